"""compose.yaml cannot run here (no Docker engine): its structure is checked instead."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from demo_app.config import DemoConfig
from tests.demo.server import REPO

VALKEY_SERVICES = ("valkey", "valkey-sessions")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return document


def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def server_options(command: list[str]) -> dict[str, str]:
    assert command[0] == "valkey-server"
    flags = command[1:]
    return {flags[i].removeprefix("--"): str(flags[i + 1]) for i in range(0, len(flags), 2)}


def test_compose_has_the_cache_valkey_the_sessions_valkey_and_the_demo(
    compose: dict[str, Any],
) -> None:
    assert set(services(compose)) == {*VALKEY_SERVICES, "demo"}


@pytest.mark.parametrize("name", VALKEY_SERVICES)
def test_valkey_services_use_the_official_valkey_9_image(
    compose: dict[str, Any], name: str
) -> None:
    assert services(compose)[name]["image"] == "valkey/valkey:9"


@pytest.mark.parametrize("name", VALKEY_SERVICES)
def test_valkey_services_have_a_ping_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = services(compose)[name]["healthcheck"]
    assert check["test"] == ["CMD", "valkey-cli", "ping"]
    assert check["retries"] >= 1


def test_cache_valkey_is_bounded_and_evicts_least_frequently_used(
    compose: dict[str, Any],
) -> None:
    options = server_options(services(compose)["valkey"]["command"])
    assert options["maxmemory"].endswith(("mb", "gb"))
    assert options["maxmemory-policy"] == "allkeys-lfu"


def test_sessions_valkey_never_evicts_and_persists(compose: dict[str, Any]) -> None:
    service = services(compose)["valkey-sessions"]
    options = server_options(service["command"])
    assert options["maxmemory-policy"] == "noeviction"
    assert options["appendonly"] == "yes"
    volume = service["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


@pytest.mark.parametrize("name", VALKEY_SERVICES)
def test_valkey_ports_are_not_published(compose: dict[str, Any], name: str) -> None:
    assert "ports" not in services(compose)[name]


def test_demo_reaches_each_valkey_by_its_service_name(compose: dict[str, Any]) -> None:
    environment = services(compose)["demo"]["environment"]
    assert urlsplit(environment["VALKEY_URL"]).hostname == "valkey"
    assert urlsplit(environment["STATE_VALKEY_URL"]).hostname == "valkey-sessions"


def test_demo_environment_is_a_valid_demo_configuration(compose: dict[str, Any]) -> None:
    environment = {k: str(v) for k, v in services(compose)["demo"]["environment"].items()}
    config = DemoConfig.from_env(environment)
    assert config.valkey.url == environment["VALKEY_URL"]
    assert config.state_valkey is not None
    assert config.state_valkey.url == environment["STATE_VALKEY_URL"]


def test_demo_starts_after_both_valkeys_are_healthy(compose: dict[str, Any]) -> None:
    depends_on = services(compose)["demo"]["depends_on"]
    assert depends_on == {name: {"condition": "service_healthy"} for name in VALKEY_SERVICES}


def test_demo_listens_on_all_interfaces_and_is_published_on_loopback_at_its_port(
    compose: dict[str, Any],
) -> None:
    demo = services(compose)["demo"]
    port = str(demo["environment"]["PORT"])
    assert demo["environment"]["HOST"] == "0.0.0.0"  # inside the container only
    assert demo["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_demo_installs_the_package_and_runs_the_demo_module(compose: dict[str, Any]) -> None:
    demo = services(compose)["demo"]
    assert demo["image"].startswith("python:3.")
    script = " ".join(demo["command"])
    assert "pip install" in script
    assert "'.[fastapi]'" in script
    assert "exec python -m demo_app" in script  # exec: SIGTERM reaches the demo itself
    assert (REPO / "demo_app" / "__main__.py").exists()


def test_demo_has_a_healthcheck_on_its_health_endpoint(compose: dict[str, Any]) -> None:
    check = " ".join(services(compose)["demo"]["healthcheck"]["test"])
    assert "/health" in check
