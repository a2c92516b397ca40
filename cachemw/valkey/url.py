"""Parse a Valkey connection URL into an endpoint description (no I/O).

Accepted forms::

    redis://[user[:password]@]host[:port][/db]       valkey:// is an alias
    rediss://...                                     TLS; valkeys:// is an alias
    unix:///path/to/socket?db=0                      a Unix socket
    redis+cluster://host:port[,host:port...]         a Valkey Cluster (valkey+cluster://,
    rediss+cluster://..., valkeys+cluster://...)     or any of the above with ?cluster=true

Query parameters: ``db``, ``cluster``, ``client_name``, ``ssl_cert_reqs``
(``required``/``optional``/``none``), ``ssl_ca_certs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 6379

_SCHEMES: dict[str, tuple[bool, bool, bool]] = {
    # scheme: (tls, cluster, unix)
    "redis": (False, False, False),
    "valkey": (False, False, False),
    "rediss": (True, False, False),
    "valkeys": (True, False, False),
    "redis+cluster": (False, True, False),
    "valkey+cluster": (False, True, False),
    "rediss+cluster": (True, True, False),
    "valkeys+cluster": (True, True, False),
    "unix": (False, False, True),
    "redis+unix": (False, False, True),
    "valkey+unix": (False, False, True),
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True, kw_only=True)
class ValkeyEndpoint:
    """Where and how to connect, as read from a URL."""

    mode: Literal["standalone", "cluster", "unix"]
    hosts: tuple[tuple[str, int], ...] = ()
    unix_path: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False
    tls_cert_reqs: Literal["required", "optional", "none"] = "required"
    tls_ca_certs: str | None = None
    client_name: str | None = None

    def redacted(self) -> str:
        """A description safe to log: never contains the password."""
        if self.mode == "unix":
            return f"unix://{self.unix_path}?db={self.db}"
        where = ",".join(f"{host}:{port}" for host, port in self.hosts)
        scheme = ("rediss" if self.tls else "redis") + (
            "+cluster" if self.mode == "cluster" else ""
        )
        auth = "***@" if self.password else ""
        return f"{scheme}://{auth}{where}" + (f"/{self.db}" if self.db else "")


def _bad(url: str, why: str) -> ValueError:
    # Never echo the password: show the scheme and the reason only.
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return ValueError(f"url ({scheme}://…) is invalid: {why}")


def _parse_host_port(item: str, url: str) -> tuple[str, int]:
    item = item.strip()
    if not item:
        raise _bad(url, "empty host")
    if item.startswith("["):  # IPv6 literal: [::1]:6379
        host, sep, rest = item[1:].partition("]")
        if not sep:
            raise _bad(url, f"unterminated IPv6 literal {item!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad(url, f"port {port_text!r} must be 1..65535")
    return host, int(port_text)


def _flag(values: dict[str, list[str]], name: str, url: str) -> bool:
    raw = values.get(name, ["false"])[-1].lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _bad(url, f"{name}={raw!r} must be true or false")


def parse_valkey_url(url: str) -> ValkeyEndpoint:
    """Read a connection URL; raise ValueError naming what is wrong."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        allowed = ", ".join(f"{name}://" for name in _SCHEMES)
        raise _bad(url, f"scheme must be one of {allowed}")
    tls, cluster, unix = _SCHEMES[scheme.lower()]
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    cluster = cluster or _flag(query, "cluster", url)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if unix:
        db_text = query.get("db", ["0"])[-1]
    else:
        db_text = query.get("db", [""])[-1] or parts.path.strip("/")
    if db_text and not db_text.isdigit():
        raise _bad(url, f"db {db_text!r} must be a non-negative integer")
    db = int(db_text or 0)
    if cluster and db:
        raise _bad(url, "a Valkey Cluster only has db 0")
    cert_reqs = query.get("ssl_cert_reqs", ["required"])[-1].lower()
    if cert_reqs not in ("required", "optional", "none"):
        raise _bad(url, f"ssl_cert_reqs={cert_reqs!r} must be required, optional or none")
    common = {
        "username": username,
        "password": password,
        "db": db,
        "tls": tls,
        "tls_cert_reqs": cert_reqs,
        "tls_ca_certs": query.get("ssl_ca_certs", [None])[-1],
        "client_name": query.get("client_name", [None])[-1],
    }
    if unix:
        if not parts.path:
            raise _bad(url, "a unix:// URL needs a socket path")
        return ValkeyEndpoint(mode="unix", unix_path=unquote(parts.path), **common)  # type: ignore[arg-type]
    netloc = parts.netloc.rpartition("@")[2]
    hosts = tuple(_parse_host_port(item, url) for item in netloc.split(","))
    if len(hosts) > 1 and not cluster:
        raise _bad(url, "several hosts need a cluster URL (redis+cluster:// or ?cluster=true)")
    mode: Literal["standalone", "cluster"] = "cluster" if cluster else "standalone"
    return ValkeyEndpoint(mode=mode, hosts=hosts, **common)  # type: ignore[arg-type]
