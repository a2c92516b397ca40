"""Benchmark scenarios: one small ASGI app per module, registered in ``bench/registry.py``."""
