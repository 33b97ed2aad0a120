"""Inputs that answered 500, most found by Schemathesis (bench/bench_schemathesis.py, on SQLite and PostgreSQL): each
is now a clear client error."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.gateway.enrollment.conftest import running_portal
from tests.gateway.enrollment.conftest import signed_in as enrollment_signed_in
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, WG_KEYS
from tests.support import portal as whole
from tests.support.portal import Portal, csrf_of


@pytest.fixture
def agent(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[tuple[httpx.Client, str]]:
    """agent1 signed in with her certificate; her client and her session's CSRF token."""
    with (
        whole.serving_portal(
            tmp_path,
            db_url,
            engine,
            kind=Portal,
            passwords=PASSWORDS,
            groups=GROUPS,
            certified=WG_KEYS,
            trusted_proxy=True,
        ) as portal,
        portal.client() as client,
    ):
        answer = whole.sign_in(client, "agent1", PASSWORDS["agent1"], headers=portal.proxy_headers("agent1"))
        assert answer.status_code == 303, whole.page_error(answer)
        yield client, csrf_of(client.get("/agent", headers={"accept": "text/html"}))


@pytest.mark.parametrize("row_id", [2**31, 227069212284874391552])
def test_a_row_id_beyond_what_the_database_holds_is_refused_before_the_database(
    agent: tuple[httpx.Client, str], row_id: int
) -> None:
    """Beyond 2^63 the SQLite driver cannot bind it; beyond 2^31 - 1 PostgreSQL's INTEGER id columns cannot hold it
    (the statement failed, 500)."""
    client, csrf = agent
    answer = client.post(f"/voice/numbers/{row_id}/confirm", json={"code": "1"}, headers={"x-csrf-token": csrf})
    assert answer.status_code == 422


def test_an_environment_check_result_that_is_not_json_is_refused(agent: tuple[httpx.Client, str]) -> None:
    client, csrf = agent
    answer = client.post("/enrollment/envcheck/runs/0/result", content=b"\xff not json", headers={"x-csrf-token": csrf})
    assert answer.status_code == 422
    assert answer.json() == {"error": "enrollment.envcheck", "message": "the result must be a JSON object"}


@pytest.fixture
def admin(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[httpx.Client]:
    """admin1 signed in with a password (enrollment's policy: no certificate, no second factor)."""
    with running_portal(tmp_path, db_url, engine) as portal, enrollment_signed_in(portal, "admin1") as client:
        yield client


@pytest.mark.parametrize("version", [str(2**31), "²"])
def test_a_policy_version_the_database_cannot_hold_or_not_a_number_is_not_found(
    admin: httpx.Client, version: str
) -> None:
    """2^31 failed PostgreSQL's INTEGER (500); "²" passed ``str.isdigit`` and failed ``int`` (500 on both)."""
    token = csrf_of(admin.get("/security-admin/policy", headers={"accept": "text/html"}))
    answer = admin.post("/security-admin/policy/rollback", data={"version": version, "csrf": token})
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
