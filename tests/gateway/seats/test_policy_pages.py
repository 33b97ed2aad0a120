"""The security admin's policy pages through the real portal: explain, import (refused with every line), export,
history, all audited; and the loopback routes guacamole-lite's server.js calls."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from desktop_broker.guacamole.gate import LaunchGate
from desktop_broker.guacamole.token import derive_token_key, token_digest
from gateway.db import session_scope
from gateway.policies.service import current_version
from gateway.seats.launch_store import DbLaunchStore
from tests.gateway.seats.conftest import TWO_APPS_POLICY, SeatPortal, audit_trail, seat_portal
from tests.gateway.sessions.conftest import csrf_of

BAD = TWO_APPS_POLICY.replace("idle_timeout: 15m", "idle_timeout: 15x").replace(
    "apps: [customer-console]", "apps: [nowhere]"
)
SECRET = "guacamole-broker-secret-for-tests"
RDP = {"hostname": "10.20.0.10", "disable-copy": "true", "disable-paste": "true", "enable-drive": "false"}
RDP |= {"enable-printing": "false", "security": "tls"}


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[SeatPortal]:
    # A policy whose security admins need no TOTP, to keep sign-in short.
    with seat_portal(tmp_path, db_url, engine, warm=0, guacamole_secret=SECRET, policy=TWO_APPS_POLICY) as running:
        yield running


@pytest.fixture
def admin(portal: SeatPortal) -> Iterator[httpx.Client]:
    with portal.signed_in("admin1") as client:
        yield client


def test_an_invalid_import_lists_every_problem_with_its_line_and_keeps_the_running_policy(
    portal: SeatPortal, admin: httpx.Client
) -> None:
    csrf = csrf_of(admin.get("/security-admin/policy"))
    refused = admin.post("/security-admin/policy/import", data={"csrf": csrf, "document": BAD})
    assert refused.status_code == 422
    problems = re.search(r'id="problems">([^<]+)<', refused.text)
    assert problems and "15x" in problems.group(1) and "nowhere" in problems.group(1)
    assert len(re.findall(r"line \d+, column \d+", problems.group(1))) == 2
    with Session(portal.engine) as db:
        assert current_version(db).version == 1  # type: ignore[union-attr]
    assert audit_trail(portal, "policy.import")[-1].outcome == "refused"


def test_a_valid_import_becomes_the_newest_version_and_export_returns_it(
    portal: SeatPortal, admin: httpx.Client
) -> None:
    csrf = csrf_of(admin.get("/security-admin/policy"))
    changed = TWO_APPS_POLICY.replace("idle_timeout: 15m", "idle_timeout: 10m")
    fields = {"csrf": csrf, "document": changed, "comment": "shorter"}
    preview = admin.post("/security-admin/policy/import", data=fields)
    assert preview.status_code == 200 and 'id="policy-diff"' in preview.text  # shown first, nothing stored yet
    assert '<span class="removed">-    idle_timeout: 15m</span>' in preview.text
    assert '<span class="added">+    idle_timeout: 10m</span>' in preview.text
    assert re.findall(r'data-version="(\d+)"', admin.get("/security-admin/policy").text) == ["1"]
    posted = admin.post("/security-admin/policy/import", data={**fields, "confirmed": "yes"})
    assert posted.status_code == 303 and posted.headers["location"] == "/security-admin/policy?done=policy_imported"
    page = admin.get("/security-admin/policy?done=policy_imported")
    assert re.findall(r'data-version="(\d+)"', page.text) == ["2", "1"] and "shorter" in page.text
    assert "The new policy version is in force." in page.text
    exported = admin.get("/security-admin/policy/export")
    assert exported.text == changed and "attachment" in exported.headers["content-disposition"]
    assert audit_trail(portal, "policy.export")[-1].actor == "admin1"


def test_an_earlier_version_is_put_back_in_force_as_a_new_version_after_confirmation(
    portal: SeatPortal, admin: httpx.Client
) -> None:
    csrf = csrf_of(admin.get("/security-admin/policy"))
    changed = TWO_APPS_POLICY.replace("idle_timeout: 15m", "idle_timeout: 10m")
    admin.post("/security-admin/policy/import", data={"csrf": csrf, "document": changed, "confirmed": "yes"})
    asked = admin.post("/security-admin/policy/rollback", data={"csrf": csrf, "version": "1"})
    assert asked.status_code == 200 and "Put version 1 back in force?" in asked.text
    with Session(portal.engine) as db:
        assert current_version(db).version == 2  # type: ignore[union-attr]
    done = admin.post("/security-admin/policy/rollback", data={"csrf": csrf, "version": "1", "confirmed": "yes"})
    assert done.headers["location"] == "/security-admin/policy?done=policy_restored"
    with Session(portal.engine) as db:
        restored = current_version(db)
        assert restored is not None and restored.version == 3 and restored.document == TWO_APPS_POLICY
        assert restored.comment == "rollback to version 1"


def test_groups_the_policy_does_not_know_are_named_in_the_explanation(admin: httpx.Client) -> None:
    page = admin.get("/security-admin/policy", params={"groups": "SOHO-Agents; Night-Shift"})
    assert re.search(r'id="unknown-groups">[^<]*Night-Shift', page.text)
    assert '<tr data-name="idle_timeout"><td>Idle timeout</td>' in page.text  # a label, not the raw key


def test_a_persons_policy_is_shown_with_the_reason_for_each_value(portal: SeatPortal, admin: httpx.Client) -> None:
    page = admin.get("/security-admin/policy", params={"user": "agent1"})
    rows = dict(re.findall(r'<tr data-name="([^"]+)"><td>[^<]+</td><td>([^<]+)</td>', page.text))
    assert rows["clipboard_out"] == "SOHO-Agents: default off"
    assert "15m" in rows["idle_timeout"]
    explained = audit_trail(portal, "policy.explain")[-1]
    assert (explained.actor, explained.target) == ("admin1", "agent1")


def test_an_agent_cannot_open_the_policy_pages(portal: SeatPortal) -> None:
    with portal.signed_in("agent1") as agent:
        assert agent.get("/security-admin/policy").status_code == 403
        assert agent.get("/security-admin/policy/export").status_code == 403


def test_internal_redeem_refuses_forwarded_requests_and_launches_bound_to_no_live_seat(portal: SeatPortal) -> None:
    """The loopback route is for guacamole-lite alone, and a launch counts only while its lease and session live.

    A launch the portal makes is bound to its lease and redeemed once: test_guacamole_from_portal.py and
    test_guacamole_session_end.py prove that path end to end through the real guacamole-lite.
    """
    with session_scope(portal.engine) as db:
        gate = LaunchGate(derive_token_key(SECRET.encode()), DbLaunchStore(db, portal.clock), portal.clock)
        issued = gate.issue_seat_launch(user="agent1", seat="billing-1", protocol="rdp", parameters=RDP)
    body = {"launch_id": issued.launch_id, "token_sha256": token_digest(issued.token)}
    with portal.client() as client:
        forwarded = client.post("/internal/launch/redeem", json=body, headers={"X-Forwarded-For": "198.51.100.7"})
        assert forwarded.status_code == 403
        assert client.post("/internal/launch/redeem", json=body).status_code == 403
    outcomes = [(e.outcome, e.actor) for e in audit_trail(portal, "seat.connect")]
    assert outcomes == [("refused", "guacamole-lite")]
