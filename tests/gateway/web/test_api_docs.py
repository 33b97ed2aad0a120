"""``/docs`` and ``/openapi.json`` map the whole gateway: only a signed-in security admin gets them."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from tests.support import portal as whole
from tests.support.portal import Portal

PASSWORDS = {"admin1": "admin-one-pw", "sup1": "sup-one-pw"}
GROUPS = {"admin1": ["SOHO-SecurityAdmins"], "sup1": ["SOHO-Supervisors"]}
POLICY = """\
version: 1
apps: []
roles:
  supervisor: {require_client_certificate: false}
  security_admin: {require_client_certificate: false}
groups:
  SOHO-Supervisors: {roles: [supervisor]}
  SOHO-SecurityAdmins: {roles: [security_admin]}
"""
"""No second factor for the admin here: what is tested is the role check, not the sign-in."""


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    with whole.serving_portal(
        tmp_path, db_url, engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, policy=POLICY
    ) as running:
        yield running


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_api_description_is_closed_to_anonymous_callers(portal: Portal, path: str) -> None:
    with portal.client() as client:
        answer = client.get(path)
    assert answer.status_code in (401, 404)
    assert "/pki/ocsp" not in answer.text


def test_api_description_is_refused_to_a_supervisor(portal: Portal) -> None:
    with portal.client() as client:
        assert whole.sign_in(client, "sup1", PASSWORDS["sup1"]).status_code == 303
        assert client.get("/openapi.json").status_code == 403
        assert client.get("/docs").status_code == 403
    with session_scope(portal.engine) as db:
        refused = db.exec(select(AuditEvent).where(AuditEvent.action == "request.refused")).all()
    assert [(e.actor, e.outcome, e.target) for e in refused] == [
        ("sup1", "role_security_admin_missing", "GET /openapi.json"),
        ("sup1", "role_security_admin_missing", "GET /docs"),
    ]


def test_security_admin_reads_the_api_description(portal: Portal) -> None:
    with portal.client() as client:
        assert whole.sign_in(client, "admin1", PASSWORDS["admin1"]).status_code == 303
        described = client.get("/openapi.json")
        browser = client.get("/docs")
    assert described.status_code == 200 and "/pki/ocsp" in str(described.json()["paths"])
    assert "/openapi.json" not in described.json()["paths"]
    assert browser.status_code == 200 and "swagger" in browser.text.lower()
