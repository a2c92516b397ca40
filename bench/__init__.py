"""The cachemw benchmark harness: ``python -m bench`` (``make bench``) and ``--quick``.

Each scenario is a small ASGI app in ``bench/scenarios/``, listed once in
``bench/registry.py``. The driver starts one real Valkey, runs every app under uvicorn (one
worker, loopback), warms it up, drives load with ``wrk`` (or a bounded asyncio client) and
reports throughput, latency, CPU and Valkey commands per request, each as a ratio to the
plain-FastAPI baseline measured in the same run (median of interleaved rounds).
"""
