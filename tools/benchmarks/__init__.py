"""Benchmark subcommands of tools/benchmark.py (one module each; ``_*`` modules are helpers)."""
