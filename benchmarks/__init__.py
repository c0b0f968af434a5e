"""Benchmarks of bt-sync against its peers, on one emulator with the same generated data.

`python -m benchmarks.run` (or `make bench`) runs every case, each in a fresh
subprocess, and writes `benchmarks/results.jsonl` and `benchmarks/RESULTS.md`.
"""
