"""Benchmark studies: each measures into docs/*.json, a renderer writes the
Markdown. Run from the repository root as `python -m benchmarks.<name>`."""
