"""Benchmarks and the fuzz/soak campaigns (run with `python -m bench.NAME`)."""
