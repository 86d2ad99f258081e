"""Benchmarks against the budgets of docs/architecture.md §6; run with `make bench`."""
