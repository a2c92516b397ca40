"""Key functions: who a request counts against. Each maps an ASGI scope to an identity.

Identities carry a kind prefix (``ip:``, ``user:``, ``key:``) so a user named ``1.2.3.4``
never shares a bucket with that address. They are digested before they reach a key, so any
text is safe here. ``None`` means "this rule does not apply to this request" (e.g. no API key).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cachemw.http.cache_control import is_token
from cachemw.http.client_ip import ClientAddressPolicy, client_address
from cachemw.http.ratelimit import KeyFunction
from cachemw.valkey import digest

__all__ = ["api_key", "authenticated_user", "client_ip", "user_or_client_ip"]

Scope = Mapping[str, Any]


def client_ip(policy: ClientAddressPolicy | None = None) -> KeyFunction:
    """The client address (the default key), resolved behind ``policy``'s trusted proxies."""
    policy = policy or ClientAddressPolicy()

    def identity(scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else None
        return "ip:" + client_address(peer, scope.get("headers") or (), policy)

    return identity


def _user_id(scope: Scope) -> str | None:
    # Starlette's AuthenticationMiddleware puts a BaseUser in scope["user"].
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        name = user.identity  # a stable id where the user class has one
    except (AttributeError, NotImplementedError):  # starlette's SimpleUser: only a name
        name = None
    return "user:" + str(name or user.display_name)


def authenticated_user() -> KeyFunction:
    """The authenticated user's identity; the rule skips anonymous requests."""
    return _user_id


def user_or_client_ip(policy: ClientAddressPolicy | None = None) -> KeyFunction:
    """The authenticated user, else the client address."""
    by_ip = client_ip(policy)

    def identity(scope: Scope) -> str | None:
        return _user_id(scope) or by_ip(scope)

    return identity


def api_key(header: str = "x-api-key") -> KeyFunction:
    """The value of an API-key header (digested: keys never reach Valkey in clear)."""
    if not is_token(header):
        raise ValueError(f"header {header!r} must be an HTTP field name")
    name = header.lower().encode("latin-1")

    def identity(scope: Scope) -> str | None:
        for key, value in scope.get("headers") or ():
            if key == name and value:
                return "key:" + digest(value)
        return None

    return identity
