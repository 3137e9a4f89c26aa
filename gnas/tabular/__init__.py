"""Tabular benchmarks: networks evaluated by looking their trainings up (NAS-Bench-201)."""
