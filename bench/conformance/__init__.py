"""Conformance harness: the public HTTP cache test suite (npm ``http-cache-tests``) against a
reverse proxy wrapped in cachemw's ``CacheMiddleware``. Run ``python -m bench.conformance``."""
