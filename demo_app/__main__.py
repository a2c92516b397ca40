"""``make demo``: run the demo on ``VALKEY_URL``, or on an embedded Valkey it starts and stops."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from cachemw.valkey.embedded import EmbeddedValkey

logger = logging.getLogger("demo_app")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    embedded: EmbeddedValkey | None = None
    if not os.environ.get("VALKEY_URL"):
        embedded = EmbeddedValkey().start()
        os.environ["VALKEY_URL"] = embedded.url
        logger.info("started an embedded Valkey at %s (pid %s)", embedded.url, embedded.pid)
    try:
        print(f"cachemw demo: open http://{host}:{port}/", flush=True)
        uvicorn.run("demo_app.app:create_app", factory=True, host=host, port=port)
    finally:
        if embedded is not None:
            embedded.cleanup()
            logger.info("stopped the embedded Valkey")
    return 0


if __name__ == "__main__":
    sys.exit(main())
