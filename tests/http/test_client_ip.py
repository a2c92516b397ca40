"""Client address behind trusted proxies (RFC 7239, X-Forwarded-For), sans-I/O."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.client_ip import ClientAddressPolicy, client_address, forwarded_for

PROXY = "10.0.0.5"
TRUST_PROXIES = ClientAddressPolicy(trusted_proxies=("10.0.0.0/8",))
TRUST_FORWARDED = ClientAddressPolicy(trusted_proxies=("10.0.0.0/8",), header="forwarded")
TRUST_REAL_IP = ClientAddressPolicy(trusted_proxies=("10.0.0.0/8",), header="x-real-ip")
NO_PROXIES = ClientAddressPolicy()


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in pairs]


SPOOFS = h(
    ("x-forwarded-for", "1.1.1.1"),
    ("x-real-ip", "2.2.2.2"),
    ("forwarded", "for=3.3.3.3"),
)


@pytest.mark.parametrize("policy", [NO_PROXIES, TRUST_PROXIES, TRUST_FORWARDED, TRUST_REAL_IP])
def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    policy: ClientAddressPolicy,
) -> None:
    assert client_address("203.0.113.9", SPOOFS, policy) == "203.0.113.9"


def test_forwarding_headers_are_ignored_when_no_proxy_is_trusted() -> None:
    assert client_address(PROXY, SPOOFS, NO_PROXIES) == PROXY


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the left entry is the client's own claim
        ("6.6.6.6, 203.0.113.9, 10.1.1.1", "203.0.113.9"),  # a second trusted hop
        ("10.2.2.2, 10.1.1.1", "10.2.2.2"),  # every hop trusted: the left-most
        ("6.6.6.6,garbage, 10.1.1.1", "10.1.1.1"),  # unusable hop: the proxy that wrote it
        ("", PROXY),
        (" 203.0.113.9:5555 ", "203.0.113.9"),
    ],
)
def test_client_is_the_right_most_untrusted_forwarded_address(xff: str, client: str) -> None:
    assert client_address(PROXY, h(("x-forwarded-for", xff)), TRUST_PROXIES) == client


def test_several_header_lines_are_one_list_in_order() -> None:
    headers = h(("x-forwarded-for", "6.6.6.6, 203.0.113.9"), ("x-forwarded-for", "10.1.1.1"))
    assert client_address(PROXY, headers, TRUST_PROXIES) == "203.0.113.9"
    headers = h(("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "6.6.6.6"))
    assert client_address(PROXY, headers, TRUST_PROXIES) == "6.6.6.6"


def test_forwarding_header_names_are_case_insensitive() -> None:
    headers = [(b"X-Forwarded-For", b"203.0.113.9")]
    assert client_address(PROXY, headers, TRUST_PROXIES) == "203.0.113.9"


def test_only_the_configured_header_is_read() -> None:
    # A proxy that sets X-Forwarded-For passes a client's own Forwarded through untouched.
    headers = h(("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "203.0.113.9"))
    assert client_address(PROXY, headers, TRUST_PROXIES) == "203.0.113.9"
    assert client_address(PROXY, headers, TRUST_FORWARDED) == "6.6.6.6"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("for=203.0.113.9", "203.0.113.9"),
        ('For="203.0.113.9:443";proto=https', "203.0.113.9"),
        ("proto=https;for=203.0.113.9;by=10.0.0.5", "203.0.113.9"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::/64"),
        ("for=6.6.6.6, for=203.0.113.9", "203.0.113.9"),
        ("for=203.0.113.9, for=10.1.1.1", "203.0.113.9"),
        ("for=unknown", PROXY),
        ("for=_hidden, for=10.1.1.1", "10.1.1.1"),
        ('for="6.6.6.6,7.7.7.7", for=203.0.113.9', "203.0.113.9"),
    ],
)
def test_forwarded_header_rfc7239(forwarded: str, client: str) -> None:
    assert client_address(PROXY, h(("forwarded", forwarded)), TRUST_FORWARDED) == client


def test_forwarded_elements_without_for_keep_their_place() -> None:
    assert forwarded_for(["proto=https, for=1.2.3.4"]) == ["", "1.2.3.4"]


def test_x_real_ip_from_a_trusted_proxy() -> None:
    assert client_address(PROXY, h(("x-real-ip", "203.0.113.9")), TRUST_REAL_IP) == "203.0.113.9"


@pytest.mark.parametrize(
    ("peer", "canonical"),
    [
        ("::ffff:203.0.113.9", "203.0.113.9"),  # IPv4-mapped IPv6 is the IPv4 host
        ("2001:DB8::1", "2001:db8::/64"),
        ("2001:0DB8:0000:0001:0000:0000:0000:0001", "2001:db8:0:1::/64"),
        ("fe80::1%eth0", "fe80::/64"),  # the zone is local to the server
        ("[2001:db8::1]:443", "2001:db8::/64"),
        ("203.0.113.9", "203.0.113.9"),
    ],
)
def test_addresses_are_canonicalised(peer: str, canonical: str) -> None:
    assert client_address(peer, [], NO_PROXIES) == canonical


def test_ipv6_addresses_in_one_64_share_an_identity() -> None:
    network = ipaddress.ip_network("2001:db8:1:2::/64")
    addresses = {str(network[i * 7919 + 1]) for i in range(1000)}
    assert len({client_address(a, [], NO_PROXIES) for a in addresses}) == 1


def test_ipv6_grouping_is_configurable() -> None:
    full = ClientAddressPolicy(ipv6_prefix=128)
    assert client_address("2001:db8::1", [], full) == "2001:db8::1"
    assert client_address("2001:db8::2", [], full) == "2001:db8::2"


def test_ipv4_grouping_is_configurable() -> None:
    assert client_address("203.0.113.9", [], ClientAddressPolicy(ipv4_prefix=24)) == (
        "203.0.113.0/24"
    )


def test_peer_without_an_address_is_one_identity() -> None:
    assert client_address(None, SPOOFS, TRUST_PROXIES) == "unknown"
    assert client_address("testclient", SPOOFS, TRUST_PROXIES) == "testclient"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"trusted_proxies": ("10.0.0.0/33",)}, "trusted_proxies"),
        ({"trusted_proxies": "10.0.0.0/8"}, "trusted_proxies"),
        ({"header": "x-client-ip"}, "header"),
        ({"ipv6_prefix": 0}, "ipv6_prefix"),
        ({"ipv4_prefix": 33}, "ipv4_prefix"),
    ],
)
def test_invalid_policy_error_names_the_setting(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientAddressPolicy(**settings)  # type: ignore[arg-type]


@given(
    values=st.lists(st.binary(max_size=60), max_size=5),
    header=st.sampled_from(["x-forwarded-for", "forwarded", "x-real-ip"]),
)
def test_resolver_never_raises_on_hostile_headers(values: list[bytes], header: str) -> None:
    policy = ClientAddressPolicy(trusted_proxies=("10.0.0.0/8",), header=header)  # type: ignore[arg-type]
    result = client_address(PROXY, [(header.encode(), v) for v in values], policy)
    assert isinstance(result, str)
    assert len(result) <= 64


def test_huge_forged_chains_are_bounded() -> None:
    chain = ", ".join(["10.9.9.9"] * 10_000)
    assert client_address(PROXY, h(("x-forwarded-for", chain)), TRUST_PROXIES) == "10.9.9.9"
