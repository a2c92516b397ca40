"""HeadersMiddleware over real HTTP (httpx ASGITransport) and the raw ASGI interface."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from cachemw.headers import CachePolicy, HeadersMiddleware
from cachemw.http.validators import entity_tag_value_for_body
from tests.headers.apps import (
    BIG_BODY,
    LAST_MODIFIED,
    client,
    http_scope,
    no_request_body,
    starlette_app,
)

LATER = "Sun, 06 Nov 1994 08:50:00 GMT"
EARLIER = "Sun, 06 Nov 1994 08:00:00 GMT"
NOT_MODIFIED_FIELDS = {"etag", "cache-control", "vary", "expires", "content-location", "date"}


async def get_etag(path: str = "/json", **options: Any) -> str:
    async with client(starlette_app(**options)) as http:
        return (await http.get(path)).headers["etag"]


# --- ETag generation -------------------------------------------------------------------


async def test_get_2xx_response_gets_strong_etag_from_body_digest() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/json")
    assert response.headers["etag"] == entity_tag_value_for_body(response.content).decode()


async def test_same_body_gets_same_etag_from_separate_app_instances() -> None:
    assert await get_etag() == await get_etag()


async def test_head_response_carries_same_etag_as_get() -> None:
    async with client(starlette_app()) as http:
        get, head = await http.get("/json"), await http.head("/json")
    assert head.status_code == 200
    assert head.headers["etag"] == get.headers["etag"]


@pytest.mark.parametrize("path", ["/created"])
async def test_other_2xx_get_responses_are_tagged(path: str) -> None:
    async with client(starlette_app()) as http:
        assert "etag" in (await http.get(path)).headers


@pytest.mark.parametrize("path", ["/no-content", "/not-found", "/error"])
async def test_responses_without_a_complete_2xx_body_get_no_etag(path: str) -> None:
    async with client(starlette_app()) as http:
        assert "etag" not in (await http.get(path)).headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_unsafe_method_response_gets_no_etag(method: str) -> None:
    async with client(starlette_app()) as http:
        response = await http.request(method, "/echo")
    assert response.status_code == 200
    assert "etag" not in response.headers


async def test_app_set_etag_is_kept() -> None:
    assert await get_etag("/app-etag") == '"app-v1"'


async def test_app_set_etag_is_marked_weak_when_content_encoding_may_change_bytes() -> None:
    assert await get_etag("/gzip") == 'W/"app-v1"'


async def test_digest_of_already_encoded_body_stays_strong() -> None:
    # The digest covers the encoded bytes the client receives, so it is a true strong tag.
    async with client(starlette_app()) as http:
        response = await http.get("/gzip-no-etag", headers={"Accept-Encoding": "identity"})
    etag = response.headers["etag"]
    assert etag.startswith('"')


async def test_encoded_downstream_sends_every_etag_weak() -> None:
    assert (await get_etag("/json", encoded_downstream=True)).startswith('W/"')
    assert await get_etag("/app-etag", encoded_downstream=True) == 'W/"app-v1"'


async def test_etag_disabled_adds_no_etag() -> None:
    async with client(starlette_app(etag=False)) as http:
        assert "etag" not in (await http.get("/json")).headers


async def test_response_above_the_cap_passes_through_without_etag() -> None:
    async with client(starlette_app(etag_max_body=1024)) as http:
        response = await http.get("/big")
    assert response.content == BIG_BODY
    assert "etag" not in response.headers


# --- streaming: never held back unless an ETag will be computed -------------------------


async def run_streaming_app(
    headers: list[tuple[bytes, bytes]], chunks: list[bytes], etag_max_body: int = 1024
) -> list[str]:
    """Log app sends and downstream receipts, in order, for a multi-chunk response."""
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, chunk in enumerate(chunks):
            log.append(f"app:{chunk.decode()}")
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            await asyncio.sleep(0)

    async def downstream(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {name for name, _ in message["headers"]}
            log.append("start+etag" if b"etag" in names else "start")
        else:
            log.append(f"client:{message['body'].decode()}")

    middleware = HeadersMiddleware(app, etag_max_body=etag_max_body)
    await middleware(http_scope("GET", "/s"), no_request_body, downstream)
    return log


async def test_streaming_response_without_length_is_not_buffered() -> None:
    log = await run_streaming_app([(b"content-type", b"text/event-stream")], [b"a", b"b"])
    assert log == ["app:a", "start", "client:a", "app:b", "client:b"]


async def test_streaming_response_above_the_cap_passes_through_untouched() -> None:
    headers = [(b"content-length", b"4000")]
    log = await run_streaming_app(headers, [b"a" * 2000, b"b" * 2000])
    assert log[:3] == ["start", "app:" + "a" * 2000, "client:" + "a" * 2000]


async def test_body_in_several_chunks_under_the_cap_is_tagged_whole() -> None:
    log = await run_streaming_app([(b"content-length", b"3")], [b"a", b"b", b"c"])
    assert log == ["app:a", "app:b", "app:c", "start+etag", "client:abc"]


async def test_head_without_body_gets_no_digest_of_the_empty_body() -> None:
    log = await run_streaming_app([(b"content-length", b"100")], [b""])
    assert log == ["app:", "start", "client:"]


# --- conditional GET / HEAD (RFC 9110 §13.2.2) ------------------------------------------


async def test_if_none_match_with_generated_etag_returns_304_without_body() -> None:
    async with client(starlette_app()) as http:
        etag = (await http.get("/json")).headers["etag"]
        response = await http.get("/json", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


async def test_not_modified_carries_only_allowed_fields() -> None:
    policy = CachePolicy(public=True, max_age=60, vary=("Accept",))
    app = starlette_app(path_rules={"/json": policy})
    async with client(app) as http:
        etag = (await http.get("/json")).headers["etag"]
        response = await http.get("/json", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert set(response.headers) <= NOT_MODIFIED_FIELDS
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["vary"] == "Accept"


async def test_if_none_match_weak_comparison_matches_weak_etag() -> None:
    async with client(starlette_app()) as http:
        etag = (await http.get("/json")).headers["etag"]
        response = await http.get("/json", headers={"If-None-Match": f'"other", W/{etag}'})
    assert response.status_code == 304


async def test_if_none_match_star_on_existing_resource_returns_304() -> None:
    async with client(starlette_app()) as http:
        assert (await http.get("/json", headers={"If-None-Match": "*"})).status_code == 304


async def test_head_with_matching_if_none_match_returns_304() -> None:
    async with client(starlette_app()) as http:
        etag = (await http.get("/json")).headers["etag"]
        assert (await http.head("/json", headers={"If-None-Match": etag})).status_code == 304


async def test_if_none_match_mismatch_returns_full_200() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/json", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.json()["id"] == 1


@pytest.mark.parametrize(("if_match", "status"), [('"app-v1"', 200), ('"app-v0"', 412)])
async def test_if_match_on_get_uses_strong_comparison(if_match: str, status: int) -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/app-etag", headers={"If-Match": if_match})
    assert response.status_code == status


async def test_if_match_failure_on_get_returns_412_without_body() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/json", headers={"If-Match": '"nope"'})
    assert response.status_code == 412
    assert response.content == b""


@pytest.mark.parametrize(("since", "status"), [(LAST_MODIFIED, 304), (LATER, 304), (EARLIER, 200)])
async def test_if_modified_since_against_last_modified(since: str, status: int) -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/last-modified", headers={"If-Modified-Since": since})
    assert response.status_code == status


async def test_if_modified_since_is_ignored_when_if_none_match_present() -> None:
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": LATER}
    async with client(starlette_app()) as http:
        assert (await http.get("/last-modified", headers=headers)).status_code == 200


async def test_unparsable_if_modified_since_is_ignored() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/last-modified", headers={"If-Modified-Since": "yesterday"})
    assert response.status_code == 200


@pytest.mark.parametrize(("since", "status"), [(LATER, 200), (EARLIER, 412)])
async def test_if_unmodified_since_on_get(since: str, status: int) -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/last-modified", headers={"If-Unmodified-Since": since})
    assert response.status_code == status


async def test_preconditions_on_error_responses_are_ignored() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/not-found", headers={"If-None-Match": "*"})
    assert response.status_code == 404


async def test_unsafe_method_preconditions_are_left_to_the_route() -> None:
    # After the handler ran, a 412 would lie: the write already happened.
    async with client(starlette_app()) as http:
        response = await http.put("/echo", headers={"If-Match": '"nope"'})
    assert response.status_code == 200


async def test_conditional_disabled_never_answers_304() -> None:
    async with client(starlette_app(conditional=False)) as http:
        etag = (await http.get("/json")).headers["etag"]
        assert (await http.get("/json", headers={"If-None-Match": etag})).status_code == 200


async def test_apps_own_304_is_trimmed_to_allowed_fields() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/own-304")
    assert response.status_code == 304
    assert set(response.headers) <= NOT_MODIFIED_FIELDS
    assert response.headers["etag"] == '"own"'


header_values = st.binary(max_size=60).filter(lambda v: not set(v) & set(b"\r\n\x00"))


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since"]
        ),
        header_values,
    ),
    st.sampled_from(["/json", "/app-etag", "/last-modified", "/gzip"]),
)
def test_any_conditional_header_values_never_cause_a_server_error(
    headers: dict[bytes, bytes], path: str
) -> None:
    async def fetch() -> int:
        async with client(starlette_app()) as http:
            return (await http.get(path, headers=headers)).status_code

    assert asyncio.run(fetch()) in (200, 304, 412)


# --- policies ----------------------------------------------------------------------------


async def test_path_rule_policy_applies_to_matching_paths() -> None:
    app = starlette_app(path_rules={"/js*": CachePolicy(public=True, max_age=60)})
    async with client(app) as http:
        assert (await http.get("/json")).headers["cache-control"] == "public, max-age=60"
        assert "cache-control" not in (await http.get("/big")).headers


@pytest.mark.parametrize(
    ("root_path", "path", "applies"),
    [
        ("/api", "/api/static/a.css", True),  # a server's --root-path, or a Mount
        ("", "/static/a.css", True),
        ("/api", "/apix/static/a.css", False),  # not below the root path
    ],
)
async def test_path_rules_match_the_path_below_the_root_path(
    root_path: str, path: str, applies: bool
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"body"})

    sent: list[Message] = []

    async def downstream(message: Message) -> None:
        sent.append(message)

    policy = CachePolicy(public=True, max_age=600)
    scope = http_scope("GET", path)
    scope["root_path"] = root_path
    await HeadersMiddleware(app, path_rules={"/static/*": policy})(
        scope, no_request_body, downstream
    )
    fields = dict(sent[0]["headers"])
    assert (fields.get(b"cache-control") == b"public, max-age=600") is applies


async def test_freshness_policy_is_not_applied_to_errors() -> None:
    app = starlette_app(path_rules={"/*": CachePolicy(public=True, max_age=60)})
    async with client(app) as http:
        assert "cache-control" not in (await http.get("/error")).headers


async def test_no_store_policy_is_applied_to_errors_too() -> None:
    app = starlette_app(path_rules={"/*": CachePolicy(no_store=True)})
    async with client(app) as http:
        assert (await http.get("/error")).headers["cache-control"] == "no-store"


async def test_app_private_wins_over_public_policy_and_vary_is_merged() -> None:
    policy = CachePolicy(public=True, max_age=60, s_maxage=600, vary=("Accept",))
    async with client(starlette_app(path_rules={"/*": policy})) as http:
        response = await http.get("/app-cache-control")
    assert response.headers.get_list("cache-control") == ["private, max-age=5"]
    assert response.headers.get_list("vary") == ["Cookie, Accept"]


async def test_app_no_store_wins_over_policy() -> None:
    policy = CachePolicy(public=True, max_age=60)
    async with client(starlette_app(path_rules={"/*": policy})) as http:
        response = await http.get("/app-no-store")
    assert response.headers.get_list("cache-control") == ["no-store"]


# --- scopes and settings -----------------------------------------------------------------


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through_untouched(scope_type: str) -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        return None

    scope: Scope = {"type": scope_type}
    await HeadersMiddleware(app)(scope, receive, send)
    assert seen == [({"type": scope_type}, receive, send)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"etag_max_body": -1}, "etag_max_body must be >= 0"),
        ({"etag_max_body": "1M"}, "etag_max_body must be an int"),
        ({"path_rules": {"static": CachePolicy(max_age=1)}}, "must start with '/'"),
    ],
)
def test_invalid_middleware_option_raises_naming_it(options: dict[str, Any], message: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with pytest.raises(ValueError, match=message):
        HeadersMiddleware(app, **options)
