"""``make soak``: two uvicorn workers with every cachemw feature, a mixed load, Valkey
restarted in the middle; the figures go to bench/SOAK.md. Not part of ``make test``."""
