"""Launching an app leases a seat and mints a token: a POST with the session's CSRF token, never a GET that any
page the agent visits could trigger (an ``<img src=…/launch>`` would have done)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.seats.models import SeatLease
from tests.gateway.seats.conftest import TWO_APPS_POLICY, SeatPortal, audit_trail, seat_portal

LAUNCH = "/agent/apps/customer-console/launch"


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[SeatPortal]:
    with seat_portal(tmp_path, db_url, engine, warm=0, policy=TWO_APPS_POLICY) as running:
        yield running


def _leases(portal: SeatPortal) -> list[SeatLease]:
    with Session(portal.engine) as db:
        return list(db.exec(select(SeatLease)).all())


def test_a_get_or_a_post_without_the_csrf_token_leases_no_seat(portal: SeatPortal) -> None:
    with portal.signed_in("agent1") as agent1:
        assert agent1.get(LAUNCH).status_code == 405
        forged = agent1.post(LAUNCH, data={"csrf": "from-another-site"})
        missing = agent1.post(LAUNCH)
        page = agent1.get("/agent", headers={"accept": "text/html"})
    assert forged.status_code == 403 and forged.json()["error"] == "csrf"
    assert missing.status_code == 403
    assert _leases(portal) == []
    refusals = [e for e in audit_trail(portal, "request.refused") if e.target == f"POST {LAUNCH}"]
    assert [(e.actor, e.outcome) for e in refusals] == [("agent1", "csrf"), ("agent1", "csrf")]
    assert f'<form method="post" action="{LAUNCH}">' in page.text
