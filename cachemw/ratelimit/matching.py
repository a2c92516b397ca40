"""Which rules apply to a request: by route template, path prefix and method, precompiled.

Route templates use Starlette's own path compiler, so ``/users/{id:int}`` matches exactly
the URLs the app's router sends to that route, and every such URL shares one bucket. The
path matched is the ASGI ``path`` (already percent-decoded, without the query), so
``/login``, ``/login?x=1`` and ``/%6Cogin`` are one route; the method only selects rules,
it is not part of the bucket, so ``HEAD /login`` counts with ``GET /login``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.convertors import Convertor
from starlette.routing import compile_path

from cachemw.http.ratelimit import Rule
from cachemw.ratelimit.store import Bucket, RateLimitStore
from cachemw.valkey import digest

__all__ = ["RuleMatcher", "Target", "bucket_name", "per_params_suffix"]


@dataclass(frozen=True, slots=True)
class Target:
    """One (rule, route) pair with its pre-rendered bucket."""

    order: int
    rule: Rule
    bucket: Bucket
    methods: frozenset[str] | None


def per_params_suffix(
    names: Sequence[str], values: Mapping[str, Any], convertors: Mapping[str, Convertor[Any]]
) -> str:
    """The bucket suffix of a rule's ``per_params``: each converted value in its convertor's
    one text form, so ``/accounts/7`` and ``/accounts/007`` (an ``int``) share one counter
    however the client spells the number."""
    parts = []
    for name in names:
        value = values.get(name)
        convertor = convertors.get(name)
        if value is None:
            parts.append("")  # the route lacks it (a dependency on a route without it)
        elif convertor is None:
            parts.append(str(value))
        else:
            parts.append(convertor.to_string(value))
    return "".join("\x00" + part for part in parts)


def bucket_name(rule: Rule, where: str | None) -> str:
    if rule.bucket is not None:
        return rule.bucket  # shared on purpose across routes and rules
    if where is None:
        return rule.name
    return f"{rule.name}.{digest(where, size=6)}"


class RuleMatcher:
    """Finds the targets of a request in rule order. Built once; matching allocates little."""

    __slots__ = ("_catch_all", "_dynamic", "_prefixes", "_static")

    def __init__(self, rules: Sequence[Rule], store: RateLimitStore) -> None:
        names = [rule.name for rule in rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rules: rule names must be unique, repeated: {duplicates}")
        self._static: dict[str, list[Target]] = {}
        self._dynamic: list[tuple[re.Pattern[str], dict[str, Convertor[Any]], Target]] = []
        self._prefixes: list[tuple[str, str, Target]] = []
        self._catch_all: list[Target] = []
        for order, rule in enumerate(rules):
            methods = frozenset(rule.methods) or None

            def target(
                where: str | None,
                rule: Rule = rule,
                order: int = order,
                methods: frozenset[str] | None = methods,
            ) -> Target:
                bucket = store.bucket(rule, bucket_name(rule, where))
                return Target(order, rule, bucket, methods)

            for template in rule.routes:
                regex, path_format, convertors = compile_path(template)
                missing = set(rule.per_params) - set(convertors)
                if missing:
                    raise ValueError(
                        f"rule {rule.name!r}: per_params {sorted(missing)} are not parameters "
                        f"of route {template!r}"
                    )
                if convertors:
                    self._dynamic.append((regex, convertors, target(path_format)))
                else:
                    self._static.setdefault(template, []).append(target(template))
            for prefix in rule.path_prefixes:
                exact = prefix.rstrip("/") or "/"
                self._prefixes.append((exact, exact.rstrip("/") + "/", target("prefix:" + exact)))
            if rule.per_params and not any("{" in route for route in rule.routes):
                raise ValueError(f"rule {rule.name!r}: per_params needs routes with parameters")
            if not rule.routes and not rule.path_prefixes:
                self._catch_all.append(target(None))

    def match(self, method: str, path: str) -> list[tuple[Target, str]]:
        """Each applicable target with the bucket suffix its per-route parameters add."""
        found: list[tuple[Target, str]] = []
        for target in self._static.get(path, ()):
            if target.methods is None or method in target.methods:
                found.append((target, ""))
        for regex, convertors, target in self._dynamic:
            if target.methods is not None and method not in target.methods:
                continue
            match = regex.match(path)
            if match is not None:
                names = target.rule.per_params
                raw = match.groupdict()
                values = {name: convertors[name].convert(raw[name]) for name in names}
                found.append((target, per_params_suffix(names, values, convertors)))
        for exact, with_slash, target in self._prefixes:
            if target.methods is not None and method not in target.methods:
                continue
            if path == exact or path.startswith(with_slash):
                found.append((target, ""))
        for target in self._catch_all:
            if target.methods is None or method in target.methods:
                found.append((target, ""))
        if len(found) > 1:
            return _first_per_rule(found)
        return found


def _first_per_rule(found: list[tuple[Target, str]]) -> list[tuple[Target, str]]:
    seen: set[int] = set()
    unique = []
    for item in sorted(found, key=lambda item: item[0].order):
        if item[0].order not in seen:
            seen.add(item[0].order)
            unique.append(item)
    return unique
