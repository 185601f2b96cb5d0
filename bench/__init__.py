"""Benchmarks (not part of the test run): ``python bench/api.py --help``."""
