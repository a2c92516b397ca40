"""Hostile requests through the whole stack (limits, cache, sessions, headers, FastAPI).

Hypothesis makes requests an HTTP server would still hand to the app (header names are
tokens, values have no CR/LF/NUL, the path is what uvicorn decodes): random and duplicated
fields, hundreds of fields, 64 KiB paths, invalid percent escapes, bodies on GET, malformed
cookies, absurd Cache-Control / Range / If-* values. The promises:

* never a 5xx (Valkey is healthy here, so not even a 503), except the 504 RFC 9111
  §5.2.1.7 prescribes for ``only-if-cached`` with nothing stored;
* afterwards, a clean request for the same URL gets exactly what the app alone answers it:
  nothing a hostile request made the cache store reaches it.

Hypothesis drives a synchronous test; the stack lives on one event loop of its own
(``asyncio.Runner``) that every example reuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachemw.headers import HeadersMiddleware
from cachemw.valkey import Valkey, ValkeySettings
from tests.hardening.stack import Stack, build_stack, origin_app

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# RFC 9110 §5.5: field-value is VCHAR, SP, HTAB and obs-text; servers pass that on.
VALUE_BYTES = [bytes([b]) for b in (0x09, *range(0x20, 0x7F), *range(0x80, 0x100))]
INTERESTING_NAMES = [
    b"cache-control", b"pragma", b"range", b"if-range", b"if-none-match", b"if-match",
    b"if-modified-since", b"if-unmodified-since", b"cookie", b"authorization", b"vary",
    b"accept", b"accept-encoding", b"accept-language", b"host", b"x-forwarded-host",
    b"forwarded", b"x-original-url", b"x-http-method-override", b"content-length",
    b"content-type", b"expect", b"max-forwards", b"x-forwarded-for", b"cache-tag",
]  # fmt: skip
ABSURD_VALUES = [
    b"", b"*", b",,,", b"max-age=99999999999999999999999", b"max-age=-1", b"max-age=1.5",
    b"s-maxage=0, no-cache=\"", b"no-store, max-stale, min-fresh=abc", b"only-if-cached",
    b"stale-if-error=9e99", b"bytes=0-", b"bytes=-0", b"bytes=9-1,0-,-", b"bytes=" + b"0-1," * 500,
    b"pages=1-2", b'W/"', b'"unterminated', b'W/"a", "b", *', b"Sun, 06 Nov 1994 08:49:37 GMT",
    b"Sun, 06 Nov 99999 08:49:37 GMT", b"yesterday", b"sid=", b"sid=;sid=x;sid",
    b"sid=" + b"A" * 5000, b"sid=\"quoted\"; =; ;;", b"evil.example", b"\xff\xfe\xfd",
    b"a" * 8192,
]  # fmt: skip
# A few shared names, so hostile and clean requests keep meeting on the same URLs.
ITEMS = ["teapot", "kettle", "cup%20set", "%zz", "%2", "%ff%fe", "a%2fb", "%00", "%2e%2e", ""]
EXACT_PATHS = ["/public", "/basket", "/members", "/search", "/export", "/", "//"]
PATH_CHARS = st.sampled_from(
    [chr(c) for c in range(0x21, 0x7F) if chr(c) not in "?#"] + ["%", "%zz", "%2", "%00", "%ff"]
)
CACHED_PREFIXES = ("/catalogue/", "/page/", "/public")
CLEAN_HOST = b"shop.test"

names = st.one_of(
    st.sampled_from(INTERESTING_NAMES),
    st.text(TOKEN_CHARS, min_size=1, max_size=40).map(lambda s: s.lower().encode("latin-1")),
)
values = st.one_of(
    st.sampled_from(ABSURD_VALUES),
    st.lists(st.sampled_from(VALUE_BYTES), max_size=200).map(b"".join),
)
fields = st.one_of(
    # A few well-known fields: the requests a cache may still store, so the likeliest to
    # leave something behind for a clean request.
    st.lists(st.tuples(st.sampled_from(INTERESTING_NAMES), values), max_size=3),
    st.lists(st.tuples(names, values), max_size=30),
)
# Occasionally hundreds of fields at once (every server caps the count somewhere).
many_fields = st.integers(0, 400).map(lambda n: [(b"x-pad-%d" % (i % 7), b"v") for i in range(n)])
junk = st.lists(PATH_CHARS, max_size=40).map("".join)
paths = st.one_of(
    st.sampled_from(ITEMS).map(lambda item: "/catalogue/" + item),
    st.one_of(st.sampled_from(["1", "2", "-1", "1e3", "99999999999999999999"]), junk).map(
        lambda number: "/page/" + number
    ),
    st.sampled_from(EXACT_PATHS),
    st.tuples(st.sampled_from(["/catalogue/", "/cart/", "/", *EXACT_PATHS]), junk).map("".join),
    # 64 KiB paths, rarer: every prefix, one long segment
    st.sampled_from(["/catalogue/", "/page/", "/public/", "/"]).map(lambda p: p + "x" * 65536),
)


@dataclass(frozen=True)
class HostileRequest:
    method: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    client_ip: str


hostile_requests = st.builds(
    HostileRequest,
    method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "OPTIONS", "PURGE"]),
    raw_path=paths.map(lambda p: p.encode("ascii")),
    query=st.one_of(
        st.just(b""),
        st.sampled_from([b"a=1", b"a=1&a=2", b"%%%", b"q=%zz"]),
        st.text(TOKEN_CHARS + "=&%", max_size=80).map(str.encode),
        st.just(b"a" * 9000),
    ),
    headers=st.tuples(fields, many_fields).map(lambda pair: pair[0] + pair[1]),
    body=st.one_of(st.just(b""), st.binary(max_size=2048)),
    client_ip=st.integers(1, 250).map(lambda n: f"10.0.9.{n}"),
)


def scope_for(
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    client_ip: str,
) -> dict[str, Any]:
    """What uvicorn hands the app: ``path`` percent-decoded, ``raw_path`` as sent."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", CLEAN_HOST), *headers],
        "client": (client_ip, 40000),
        "server": ("shop.test", 80),
    }


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


async def call(app: Any, scope: dict[str, Any], body: bytes = b"") -> Answer:
    messages: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)  # the client stays connected
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    try:
        await app(scope, receive, send)
    except Exception as exc:  # an exception out of the app is what a server turns into a 500
        return Answer(500, [], repr(exc).encode())
    start = next(m for m in messages if m["type"] == "http.response.start")
    body_out = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return Answer(start["status"], list(start.get("headers", [])), body_out)


@dataclass
class Bench:
    runner: asyncio.Runner
    stack: Stack
    reference: Any


@pytest.fixture
def bench(valkey_url: str) -> Iterator[Bench]:
    with asyncio.Runner() as runner:
        valkey = Valkey(ValkeySettings(url=valkey_url, command_timeout=2.0))
        runner.run(valkey.ping(timeout=5.0))
        stack = build_stack(valkey, session_timeout=2.0)
        try:
            yield Bench(runner, stack, HeadersMiddleware(origin_app()))
        finally:
            runner.run(stack.cache.aclose())
            runner.run(valkey.aclose())


HYPOTHESIS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def test_hostile_request_through_full_stack_is_never_a_5xx(bench: Bench) -> None:
    @HYPOTHESIS
    @given(request=hostile_requests)
    def check(request: HostileRequest) -> None:
        scope = scope_for(
            request.method, request.raw_path, request.query, request.headers, request.client_ip
        )
        answer = bench.runner.run(call(bench.stack.app, scope, request.body))
        if answer.status == 504:
            # RFC 9111 §5.2.1.7: only-if-cached with nothing stored is answered 504.
            assert b"only-if-cached" in (answer.header(b"cache-status") or b"")
            return
        assert answer.status < 500, (answer.status, answer.body[:300])
        assert len(answer.body) < 1024 * 1024  # nothing amplifies the request

    check()


def test_clean_request_after_hostile_one_gets_what_the_app_alone_answers(bench: Bench) -> None:
    @HYPOTHESIS
    @given(request=hostile_requests)
    def check(request: HostileRequest) -> None:
        runner, app = bench.runner, bench.stack.app
        hostile = scope_for(
            request.method, request.raw_path, request.query, request.headers, request.client_ip
        )
        runner.run(call(app, hostile, request.body))
        path = hostile["path"]
        if not path.startswith(CACHED_PREFIXES):
            return
        clean = scope_for("GET", request.raw_path, request.query, [], "10.0.8.1")
        served = runner.run(call(app, dict(clean)))
        expected = runner.run(call(bench.reference, dict(clean)))
        assert served.status == expected.status
        assert served.body == expected.body
        assert served.header(b"content-type") == expected.header(b"content-type")
        assert served.header(b"set-cookie") is None

    check()
