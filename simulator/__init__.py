"""A fake Anthropic Messages API whose data path can fail at an exact point."""
