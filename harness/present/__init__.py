"""Presenting and judging: summaries, the report, the CI gate, strategy comparison, run diffs, bisect."""
