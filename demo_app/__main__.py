"""``make demo``: run the demo on ``VALKEY_URL``, or on an embedded Valkey it starts and stops."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

import uvicorn

from cachemw.valkey.embedded import EmbeddedValkey

logger = logging.getLogger("demo_app")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal; with Python's
    # default handler that would kill the process before `finally` stops the embedded
    # Valkey. Raising SystemExit instead lets the clean-up run.
    raise SystemExit(128 + signum)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    embedded: EmbeddedValkey | None = None
    try:
        if not os.environ.get("VALKEY_URL"):
            embedded = EmbeddedValkey().start()
            os.environ["VALKEY_URL"] = embedded.url
            logger.info("started an embedded Valkey at %s (pid %s)", embedded.url, embedded.pid)
        print(f"cachemw demo: open http://{host}:{port}/", flush=True)
        # The demo logs its own line per request (with the cache outcome): no access log.
        # It also sets Date itself (see DateHeader): uvicorn's would duplicate cached ones.
        uvicorn.run(
            "demo_app.app:create_app",
            factory=True,
            host=host,
            port=port,
            access_log=False,
            date_header=False,
        )
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            embedded.cleanup()
            logger.info("stopped the embedded Valkey")
    return 0


if __name__ == "__main__":
    sys.exit(main())
