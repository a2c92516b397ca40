"""HeadersMiddleware: cache policies, ETags and conditional requests, in pure ASGI.

It wraps ``send``: at ``http.response.start`` it applies the route's (or path rule's)
`CachePolicy`, and for GET/HEAD 2xx responses it makes sure there is an ETag and answers
If-* preconditions with 304/412 (RFC 9110 §13.2.2). A body is held back only when an ETag
will be computed from it: its length is known to be under the cap, or it arrived complete
in one message. Everything else streams through untouched.

The digest covers the bytes as they pass here, so a body the app (or an inner GZip)
already encoded gets a strong tag of its encoded bytes, which is exactly right. A tag set
by the app next to a Content-Encoding is sent weak instead: it was most likely computed
before the encoding. `encoded_downstream=True` weakens every tag, for encoders outside us.

Unsafe methods are not evaluated here: by the time the response starts, the handler has
already acted. They get their preconditions from the `condition` helpers, which run
before the handler.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cachemw.http.dates import format_http_date, parse_http_date
from cachemw.http.policy import (
    CachePolicy,
    PathPolicies,
    merge_cache_control,
    not_modified_headers,
    policy_applies_to_status,
)
from cachemw.http.routing import route_path
from cachemw.http.validators import (
    EntityTag,
    PreconditionOutcome,
    RequestConditions,
    entity_tag_value_for_body,
    evaluate_preconditions,
    has_conditional_fields,
    parse_entity_tag,
)
from cachemw.http.vary import merge_vary

__all__ = [
    "RESPONSE_DIRECTIVES_SCOPE_KEY",
    "ROUTE_POLICY_ATTRIBUTE",
    "HeadersMiddleware",
    "ResponseDirectives",
]

# An endpoint decorated with `cache_policy(...)` carries its CachePolicy here; the router
# puts the endpoint into scope["endpoint"], where the middleware finds it.
ROUTE_POLICY_ATTRIBUTE = "__cachemw_cache_policy__"
# Dependencies write into the ResponseDirectives stored under this scope key.
RESPONSE_DIRECTIVES_SCOPE_KEY = "cachemw.response_directives"

_DEFAULT_ETAG_MAX_BODY = 256 * 1024
_GET_OR_HEAD = frozenset({"GET", "HEAD"})
# 204 has no body to tag; a 206 body is a part, and tagging it as the whole is wrong.
_UNTAGGED_STATUSES = frozenset({204, 206})
_IDENTITY_CODINGS = frozenset({b"", b"identity"})
_WEAK_PREFIX = b"W/"

_CACHE_CONTROL, _VARY, _ETAG, _LAST_MODIFIED, _CONTENT_ENCODING, _CONTENT_LENGTH = range(6)
_HEADER_KINDS = {
    b"cache-control": _CACHE_CONTROL,
    b"vary": _VARY,
    b"etag": _ETAG,
    b"last-modified": _LAST_MODIFIED,
    b"content-encoding": _CONTENT_ENCODING,
    b"content-length": _CONTENT_LENGTH,
}

_AWAIT_START, _BUFFER, _PASS_THROUGH, _DROP = range(4)


class ResponseDirectives:
    """What a route's dependencies tell the middleware about this request's response.

    One per request, stored in the scope before the app runs. Routers may copy the scope
    dict, but the copies share this object, so what a dependency writes reaches us.
    """

    __slots__ = ("etag", "last_modified", "policy")

    def __init__(self) -> None:
        self.policy: CachePolicy | None = None
        self.etag: EntityTag | None = None
        self.last_modified: float | None = None


class HeadersMiddleware:
    """Apply cache policies, add ETags and answer conditional GET/HEAD requests.

    >>> app.add_middleware(
    ...     HeadersMiddleware,
    ...     path_rules={"/static/*": CachePolicy(public=True, max_age=31536000, immutable=True)},
    ... )  # doctest: +SKIP

    path_rules: default policies by path, e.g. ``{"/static/*": CachePolicy(...)}``,
        matched against the path below the app's root_path; a route's own `cache_policy`
        wins over them.
    etag: compute a strong ETag from the body for GET/HEAD 2xx responses without one.
    etag_max_body: the largest body (bytes) buffered for that; larger ones stream untagged.
    conditional: answer If-Match/If-None-Match/If-Modified-Since/If-Unmodified-Since.
    encoded_downstream: set when something outside this middleware may apply a
        content-coding (e.g. GZipMiddleware added after it); every ETag is then sent weak,
        because the bytes the client gets may not be the bytes that were tagged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        path_rules: Mapping[str, CachePolicy] | Iterable[tuple[str, CachePolicy]] = (),
        etag: bool = True,
        etag_max_body: int = _DEFAULT_ETAG_MAX_BODY,
        conditional: bool = True,
        encoded_downstream: bool = False,
    ) -> None:
        if isinstance(etag_max_body, bool) or not isinstance(etag_max_body, int):
            raise ValueError(f"etag_max_body must be an int number of bytes, got {etag_max_body!r}")
        if etag_max_body < 0:
            raise ValueError(f"etag_max_body must be >= 0 bytes, got {etag_max_body}")
        self.app = app
        path_policies = PathPolicies(path_rules)
        self.path_policies = path_policies if path_policies else None
        self.etag = etag
        self.etag_max_body = etag_max_body
        self.conditional = conditional
        self.encoded_downstream = encoded_downstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder = _Responder(self, scope, send)
        scope[RESPONSE_DIRECTIVES_SCOPE_KEY] = responder
        try:
            await self.app(scope, receive, responder.send)
        finally:
            # The scope holds the responder and the responder the scope: without this,
            # every request would leave a cycle (the scope and all it references) for the
            # garbage collector, which costs more than everything else here.
            scope.pop(RESPONSE_DIRECTIVES_SCOPE_KEY, None)


class _Responder(ResponseDirectives):
    """Per-request state; the middleware instance itself holds configuration only.

    Every response pays for this class, so the common one (a 2xx GET whose body arrives in
    one message, no If-* field) takes the shortest way through `send`: its start is held,
    then the start and the app's own body message go out with the ETag added.
    """

    __slots__ = (
        "body_size",
        "chunks",
        "config",
        "content_length",
        "downstream",
        "etag_value",
        "headers",
        "last_modified_value",
        "scope",
        "start",
        "state",
    )

    def __init__(self, config: HeadersMiddleware, scope: Scope, downstream: Send) -> None:
        self.policy = self.etag = self.last_modified = None
        self.config = config
        self.scope = scope
        self.downstream = downstream
        self.state = _AWAIT_START

    async def send(self, message: Message) -> None:
        # The decisions are synchronous; this is the only place that awaits downstream.
        state = self.state
        if state == _PASS_THROUGH:
            await self.downstream(message)
            return
        if state == _BUFFER:
            if message["type"] != "http.response.body":  # e.g. http.response.pathsend
                outgoing = (*self._release(more_body=True if self.chunks else None), message)
            elif self.chunks or message.get("more_body", False):
                outgoing = self._on_buffered_body(message)
            else:  # the whole body in the app's one message
                self._tag(message.get("body", b""))
                if self._has_conditions():
                    outgoing = self._release(more_body=False, last=message)
                else:  # the common case: the start and the app's message go out as they are
                    self.state = _PASS_THROUGH
                    start = self.start
                    start["headers"] = self.headers
                    await self.downstream(start)
                    await self.downstream(message)
                    return
        elif state == _DROP:
            return  # a 304/412 we generated is already complete
        elif message["type"] == "http.response.start":
            outgoing = self._on_start(message)
        else:
            outgoing = (message,)
        for outgoing_message in outgoing:
            await self.downstream(outgoing_message)

    def _has_conditions(self) -> bool:
        # Decided in C: most requests carry no If-* field at all.
        return self.config.conditional and has_conditional_fields(self.scope["headers"])

    def _on_start(self, message: Message) -> tuple[Message, ...]:
        scope = self.scope
        status: int = message["status"]
        # A route's own policy (set by a dependency, or on the endpoint), else a path rule.
        policy = self.policy or getattr(scope.get("endpoint"), ROUTE_POLICY_ATTRIBUTE, None)
        if policy is None and self.config.path_policies is not None:
            policy = self.config.path_policies.policy_for(route_path(scope))
        if 200 <= status < 300:  # every policy applies to a 2xx
            is_tagged_status = status not in _UNTAGGED_STATUSES and scope["method"] in _GET_OR_HEAD
        else:
            is_tagged_status = False
            if policy is not None and not policy_applies_to_status(policy, status):
                policy = None
        if policy is None and not is_tagged_status and status != 304:
            self.state = _PASS_THROUGH
            return (message,)

        headers = list(message.get("headers", ()))
        cache_control: list[bytes] | None = None
        vary: list[bytes] | None = None
        etag_value = last_modified_value = content_length = None
        encoded = False
        for name, value in headers:
            kind = _HEADER_KINDS.get(name)
            if kind is None:
                continue
            if kind == _CONTENT_LENGTH:
                if value.isdigit():
                    content_length = int(value)
            elif kind == _CACHE_CONTROL:
                cache_control = [value] if cache_control is None else [*cache_control, value]
            elif kind == _VARY:
                vary = [value] if vary is None else [*vary, value]
            elif kind == _ETAG:
                etag_value = value
            elif kind == _LAST_MODIFIED:
                last_modified_value = value
            else:
                encoded = value.strip().lower() not in _IDENTITY_CODINGS
        if policy is not None:
            headers = _apply_policy(policy, headers, cache_control, vary)
        self.headers = headers
        self.start = message
        self.etag_value = etag_value
        self.last_modified_value = last_modified_value
        self.content_length = content_length

        if not is_tagged_status:
            if status == 304:
                return self._finish_with(PreconditionOutcome.NOT_MODIFIED)
            self.state = _PASS_THROUGH
            message["headers"] = headers
            return (message,)
        if self.last_modified is not None and last_modified_value is None:
            self.last_modified_value = format_http_date(self.last_modified)
            headers.append((b"last-modified", self.last_modified_value))
        if etag_value is not None or self.etag is not None:
            self._settle_known_etag(encoded)
        elif self._may_buffer_for_etag(message, content_length):
            self.state = _BUFFER
            self.chunks: list[bytes] = []
            self.body_size = 0
            return ()
        return self._release(more_body=None)

    def _may_buffer_for_etag(self, message: Message, content_length: int | None) -> bool:
        if not self.config.etag or message.get("trailers", False):
            return False
        return content_length is None or content_length <= self.config.etag_max_body

    def _settle_known_etag(self, encoded: bool) -> None:
        """Keep the app's ETag, else add the route's; weaken it if a coding may change bytes."""
        etag_value = self.etag_value
        from_route = etag_value is None
        if etag_value is None:
            assert self.etag is not None
            etag_value = self.etag.to_bytes()
        # RFC 9110 §8.8.3: a strong validator changes with the bytes. A tag computed before
        # a content-coding was applied (inside us, or outside us) is no longer one.
        if (encoded or self.config.encoded_downstream) and etag_value.startswith(b'"'):
            etag_value = _WEAK_PREFIX + etag_value
            if not from_route:
                self.headers = [(n, v) for n, v in self.headers if n != b"etag"]
        elif not from_route:
            return
        self.etag_value = etag_value
        self.headers.append((b"etag", etag_value))

    def _on_buffered_body(self, message: Message) -> tuple[Message, ...]:
        body: bytes = message.get("body", b"")
        more_body: bool = message.get("more_body", False)
        self.chunks.append(body)
        self.body_size += len(body)
        # Without a Content-Length, only a body that arrives complete is tagged: holding
        # back a stream (server-sent events, ...) would stall the client.
        if self.content_length is None or self.body_size > self.config.etag_max_body:
            return self._release(more_body=more_body)
        if more_body:
            return ()
        body = b"".join(self.chunks)
        self._tag(body)
        self.chunks = [body]
        return self._release(more_body=False)

    def _tag(self, body: bytes) -> None:
        """Add the ETag of the complete body."""
        # A length mismatch is e.g. HEAD answered without its body: nothing to digest.
        content_length = self.content_length
        if content_length is None or content_length == len(body):
            etag_value = entity_tag_value_for_body(body)
            if self.config.encoded_downstream:
                etag_value = _WEAK_PREFIX + etag_value
            self.etag_value = etag_value
            self.headers.append((b"etag", etag_value))

    def _release(
        self, *, more_body: bool | None, last: Message | None = None
    ) -> tuple[Message, ...]:
        """Answer the preconditions, else send the start and any held-back body.

        more_body None: no body was held back; the app's body messages follow as they come.
        """
        if self.config.conditional:
            # None, decided in C, when the request carries no If-* field.
            conditions = RequestConditions.from_headers(self.scope["headers"])
            if conditions is not None:
                outcome = self._precondition_outcome(conditions)
                if outcome is not PreconditionOutcome.PROCEED:
                    return self._finish_with(outcome)
        self.state = _PASS_THROUGH
        start = self.start
        start["headers"] = self.headers
        if more_body is None:
            return (start,)
        if last is not None:
            self.chunks = []
            return (start, last)
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        return (start, {"type": "http.response.body", "body": body, "more_body": more_body})

    def _precondition_outcome(self, conditions: RequestConditions) -> PreconditionOutcome:
        etag_value = self.etag_value
        last_modified_value = self.last_modified_value
        return evaluate_preconditions(
            conditions,
            method=self.scope["method"],
            etag=parse_entity_tag(etag_value) if etag_value is not None else None,
            last_modified=(
                parse_http_date(last_modified_value) if last_modified_value is not None else None
            ),
            now=time.time(),
        )

    def _finish_with(self, outcome: PreconditionOutcome) -> tuple[Message, ...]:
        self.state = _DROP
        self.chunks = []
        if outcome is PreconditionOutcome.NOT_MODIFIED:
            status, headers = 304, not_modified_headers(self.headers)
        else:
            status, headers = 412, [(b"content-length", b"0")]
        start = {"type": "http.response.start", "status": status, "headers": headers}
        return (start, {"type": "http.response.body", "body": b"", "more_body": False})


def _apply_policy(
    policy: CachePolicy,
    headers: list[tuple[bytes, bytes]],
    cache_control: list[bytes] | None,
    vary: list[bytes] | None,
) -> list[tuple[bytes, bytes]]:
    if cache_control is None:
        headers.append((b"cache-control", policy.cache_control))
    else:
        merged = merge_cache_control(policy, cache_control)
        headers = [(n, v) for n, v in headers if n != b"cache-control"]
        headers.append((b"cache-control", merged))
    if policy.vary_header is not None:
        if vary is None:
            headers.append((b"vary", policy.vary_header))
        else:
            merged_vary = merge_vary(vary, policy.vary)
            headers = [(n, v) for n, v in headers if n != b"vary"]
            if merged_vary is not None:
                headers.append((b"vary", merged_vary))
    return headers
