"""The cachemw demo shop: ``make demo`` (or ``python -m demo_app``), then open the URL."""
