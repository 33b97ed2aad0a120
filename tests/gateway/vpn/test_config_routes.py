"""The agent's config download and QR, and the admins' status, through the real app on both databases."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.app import create_app
from gateway.policies.service import import_policy
from gateway.sessions.deps import SESSION_COOKIE
from gateway.settings import load_settings
from gateway.vpn.client_config import PRIVATE_KEY_PLACEHOLDER, config_qr_svg
from gateway.vpn.controller import VpnController
from gateway.vpn.settings import VpnSettings
from tests.gateway.vpn.agents import agent_session
from tests.vpn.keys import key_pair

POLICY = """
version: 1
groups:
  SOHO-Agents:
    roles: [agent]
    network_scope:
      - 10.77.0.1/32 443/tcp
      - 172.30.0.0/25 8081/tcp
      - 172.30.0.128/25 icmp
      - fd30::/64 443/tcp
  SOHO-SecurityAdmins:
    roles: [security_admin]
"""


@pytest.fixture
def app(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[FastAPI]:
    app = create_app(load_settings(data_dir=tmp_path, database_url=db_url), engine, run_jobs=False)
    settings = VpnSettings(enabled=True, endpoint="vpn.corp.example:51820", dns=["10.77.0.1"])
    controller = VpnController(engine, settings, tmp_path)
    controller.public_key = key_pair()[1]  # as start() sets it, without bringing an interface up
    app.state.vpn = controller
    yield app


def _cookie(engine: Engine, login: str, **options: object) -> str:
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as db:
        import_policy(db, POLICY, actor="admin", source="test", now=now)
        _, token = agent_session(db, login, now, **options)  # type: ignore[arg-type]
        db.commit()
    return token


def test_the_agent_config_has_their_addresses_the_gateway_key_and_exactly_the_allowed_scope(
    app: FastAPI, engine: Engine
) -> None:
    token = _cookie(engine, "li.na", wireguard_key=key_pair()[1])
    with TestClient(app) as client:
        response = client.get("/vpn/config", cookies={SESSION_COOKIE: token})
    assert response.status_code == 200, response.text
    assert 'filename="sohogw-li.na.conf"' in response.headers["content-disposition"]
    fields = dict(line.split(" = ", 1) for line in response.text.splitlines() if " = " in line)
    assert fields == {
        "PrivateKey": PRIVATE_KEY_PLACEHOLDER,
        "Address": "10.77.0.2/32, fd77::2/128",
        "DNS": "10.77.0.1",
        "PublicKey": app.state.vpn.public_key,
        "Endpoint": "vpn.corp.example:51820",
        "AllowedIPs": "10.77.0.1/32, 172.30.0.0/24, fd30::/64",
        "PersistentKeepalive": "25",
    }


def test_the_qr_code_carries_the_same_config(app: FastAPI, engine: Engine) -> None:
    token = _cookie(engine, "li.na", wireguard_key=key_pair()[1])
    with TestClient(app) as client:
        config = client.get("/vpn/config", cookies={SESSION_COOKIE: token}).text
        qr = client.get("/vpn/config.svg", cookies={SESSION_COOKIE: token})
    assert qr.headers["content-type"] == "image/svg+xml"
    assert qr.text.startswith("<svg") and qr.text == config_qr_svg(config)


def test_no_config_without_a_session_or_without_a_certificate_bound_key(app: FastAPI, engine: Engine) -> None:
    keyless = _cookie(engine, "wang.fang")
    with TestClient(app) as client:
        assert client.get("/vpn/config").status_code == 401
        refused = client.get("/vpn/config", cookies={SESSION_COOKIE: keyless})
    assert refused.status_code == 409 and "certificate" in refused.json()["message"]


def test_status_is_for_security_admins_only(app: FastAPI, engine: Engine) -> None:
    agent = _cookie(engine, "li.na", wireguard_key=key_pair()[1])
    admin = _cookie(engine, "zhao.min", roles="security_admin", groups=("SOHO-SecurityAdmins",))
    with TestClient(app) as client:
        assert client.get("/vpn/status", cookies={SESSION_COOKIE: agent}).status_code == 403
        status = client.get("/vpn/status", cookies={SESSION_COOKIE: admin})
    assert status.status_code == 200
    assert status.json()["public_key"] == app.state.vpn.public_key


def test_a_vpn_that_is_off_says_why(app: FastAPI, engine: Engine, tmp_path: Path) -> None:
    off = VpnController(engine, VpnSettings(), tmp_path)
    off.start()
    app.state.vpn = off
    token = _cookie(engine, "li.na", wireguard_key=key_pair()[1])
    with TestClient(app) as client:
        refused = client.get("/vpn/config", cookies={SESSION_COOKIE: token})
    assert off.status()["state"] == "off"
    assert refused.status_code == 503 and "vpn.enabled is false" in refused.json()["message"]
