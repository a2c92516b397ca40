"""Key functions: who a request counts against."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.authentication import SimpleUser, UnauthenticatedUser

from cachemw.http.client_ip import ClientAddressPolicy
from cachemw.ratelimit import api_key, authenticated_user, client_ip, user_or_client_ip


def scope(**extra: Any) -> dict[str, Any]:
    return {"type": "http", "client": ("203.0.113.7", 4000), "headers": [], **extra}


class AccountUser(SimpleUser):
    def __init__(self, username: str, account_id: int) -> None:
        super().__init__(username)
        self.account_id = account_id

    @property
    def identity(self) -> str:
        return str(self.account_id)


def test_client_ip_is_the_default_identity() -> None:
    assert client_ip()(scope()) == "ip:203.0.113.7"


def test_client_ip_follows_the_trusted_proxy_policy() -> None:
    key = client_ip(ClientAddressPolicy(trusted_proxies=("203.0.113.0/24",)))
    assert key(scope(headers=[(b"x-forwarded-for", b"198.51.100.1")])) == "ip:198.51.100.1"


def test_client_ip_without_a_peer_is_one_shared_identity() -> None:
    assert client_ip()({"type": "http", "headers": []}) == "ip:unknown"


def test_authenticated_user_by_name() -> None:
    assert authenticated_user()(scope(user=SimpleUser("alice"))) == "user:alice"


def test_authenticated_user_by_stable_identity() -> None:
    assert authenticated_user()(scope(user=AccountUser("alice", 42))) == "user:42"


@pytest.mark.parametrize("user", [None, UnauthenticatedUser()])
def test_anonymous_requests_have_no_user_identity(user: object) -> None:
    assert authenticated_user()(scope(user=user)) is None


def test_user_or_client_ip_falls_back_to_the_address() -> None:
    key = user_or_client_ip()
    assert key(scope(user=SimpleUser("alice"))) == "user:alice"
    assert key(scope(user=UnauthenticatedUser())) == "ip:203.0.113.7"


def test_a_user_named_like_an_address_is_not_that_address() -> None:
    by_user = authenticated_user()(scope(user=SimpleUser("203.0.113.7")))
    assert by_user != client_ip()(scope())


def test_api_key_is_digested_never_kept_in_clear() -> None:
    identity = api_key()(scope(headers=[(b"x-api-key", b"secret-123")]))
    assert identity is not None
    assert "secret-123" not in identity
    assert identity == api_key()(scope(headers=[(b"x-api-key", b"secret-123")]))


def test_missing_api_key_means_the_rule_does_not_apply() -> None:
    assert api_key("x-token")(scope()) is None


def test_api_key_header_name_is_validated() -> None:
    with pytest.raises(ValueError, match="header"):
        api_key("x token")
