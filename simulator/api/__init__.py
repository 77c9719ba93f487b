"""The Messages API model: what a request means and what the answer is, with no I/O."""
