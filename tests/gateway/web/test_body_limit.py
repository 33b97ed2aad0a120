"""Request bodies are bounded before they are read: 413 with a message a person can act on, and an audit row."""

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from tests.support import portal as whole
from tests.support.portal import Portal, csrf_of

PASSWORDS = {"sup1": "sup-one-pw"}
GROUPS = {"sup1": ["SOHO-Supervisors"]}
LIMIT = 64 * 1024


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    with whole.serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=Portal,
        passwords=PASSWORDS,
        groups=GROUPS,
        settings={"portal": {"max_body_bytes": LIMIT}},
    ) as running:
        yield running


def _audited(portal: Portal, action: str) -> list[AuditEvent]:
    with session_scope(portal.engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_declared_huge_body_is_refused_before_a_byte_of_it_is_sent(portal: Portal) -> None:
    """Only the headers of a 150 MB POST go out; the answer must come without the server waiting for the body."""
    address = urlsplit(portal.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as raw:
        raw.sendall(
            b"POST /pki/ocsp HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: 157286400\r\n\r\n"
        )
        answer = raw.recv(65536).decode()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413")
    assert json.loads(body) == {
        "error": "body_too_large",
        "message": "the request is larger than the 64 KiB this address accepts; send less (or a smaller file)",
    }
    [refused] = _audited(portal, "http.body_too_large")
    assert refused.target == "/pki/ocsp" and json.loads(refused.detail) == {"declared": "157286400", "limit": LIMIT}


def test_body_without_a_length_is_stopped_where_it_crosses_the_limit(portal: Portal) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 16 * 1024
            yield b"\0" * (16 * 1024)

    with portal.client() as client:
        answer = client.post("/pki/ocsp", content=chunks(), headers={"content-type": "application/ocsp-request"})
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"
    assert json.loads(_audited(portal, "http.body_too_large")[0].detail)["declared"] == "unstated"


def test_person_posting_too_much_gets_the_page_in_their_language(portal: Portal) -> None:
    with portal.client() as client:
        page = client.get("/login")
        answer = client.post(
            "/login",
            data={"username": "sup1", "password": "x" * (LIMIT + 1), "csrf": csrf_of(page)},
            headers={"accept": "text/html", "accept-language": "zh-CN"},
        )
    assert answer.status_code == 413
    assert "请求内容过大" in answer.text


def test_login_takes_only_the_url_encoded_form(portal: Portal) -> None:
    with portal.client() as client:
        page = client.get("/login")
        form = {"username": "sup1", "password": PASSWORDS["sup1"], "csrf": csrf_of(page)}
        multipart = client.post("/login", data=form, files={"spooled": ("a.bin", b"\0" * 1024)})
        as_json = client.post("/login", json=form)
        proper = client.post("/login", data=form)
    assert multipart.status_code == 415 and multipart.json()["error"] == "login_form_only"
    assert as_json.status_code == 415
    assert proper.status_code == 303
    refused = [e for e in _audited(portal, "session.login") if e.outcome == "login_form_only"]
    assert [json.loads(e.detail)["content_type"] for e in refused] == ["multipart/form-data", "application/json"]


def test_only_the_evidence_uploads_get_the_evidence_limit_not_every_hr_enrollment_route(portal: Portal) -> None:
    over_default = b"\0" * (LIMIT + 1)  # far below the evidence limit (5 MiB and room for the form)
    with portal.client() as client:
        answers = {
            path: client.post(path, content=over_default, headers={"content-type": "application/x-www-form-urlencoded"})
            for path in (
                "/hr/enrollment/start",
                "/hr/enrollment/7/override",
                "/hr/enrollment/7/evidence",
                "/hr/enrollment/7/decide",
            )
        }
    assert answers["/hr/enrollment/start"].status_code == 413
    assert answers["/hr/enrollment/7/override"].status_code == 413
    # The uploads still take more than the default: refused for want of a signed-in HR officer, not for size.
    assert answers["/hr/enrollment/7/evidence"].json()["error"] == "login_required"
    assert answers["/hr/enrollment/7/decide"].json()["error"] == "login_required"
    refused = {e.target: json.loads(e.detail)["limit"] for e in _audited(portal, "http.body_too_large")}
    assert refused == {"/hr/enrollment/start": LIMIT, "/hr/enrollment/7/override": LIMIT}
