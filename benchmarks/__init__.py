"""Benchmarks against the budgets of DESIGN section 8; run with `make bench`."""
