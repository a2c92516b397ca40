"""``python -m bench.conformance.serve PORT``: uvicorn (h11, no Date header) on the proxy."""

from __future__ import annotations

import sys

import uvicorn
from uvicorn.protocols.http import h11_impl

from bench.conformance.proxy import build_app


def main() -> None:
    # The suite uses status 999; uvicorn's h11 protocol only knows phrases for 100-599.
    h11_impl.STATUS_PHRASES[999] = b"Unknown"
    port = int(sys.argv[1])
    uvicorn.run(
        build_app(),
        host="127.0.0.1",
        port=port,
        http="h11",
        date_header=False,
        server_header=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
