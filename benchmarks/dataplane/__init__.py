"""The data-plane benchmark's parts (benchmarks/bench_dataplane.py is its command): servers, load runs, report."""
