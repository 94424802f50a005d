"""Benchmark tooling shipped with the package: the data generator."""
