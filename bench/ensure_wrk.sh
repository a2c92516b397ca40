#!/bin/sh
# Make Debian's wrk available for `make bench`. Best effort: when wrk is missing and we are
# root with apt-get, install it; otherwise say so and let the bench fall back to its own
# bounded asyncio load client. Never fails the build.
set -u
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing wrk with apt-get" >&2
    if ! apt-get install -y --no-install-recommends wrk >/dev/null 2>&1; then
        apt-get update >/dev/null 2>&1 && \
            apt-get install -y --no-install-recommends wrk >/dev/null 2>&1
    fi
fi
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
echo "bench: wrk not available; using the built-in asyncio load client" >&2
exit 0
