"""Benchmarks (`rehab bench ...`); results are kept in bench/RESULTS.md."""
