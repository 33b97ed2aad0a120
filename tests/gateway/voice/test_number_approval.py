"""Security admins approve callback numbers (``voice.changes_need_approval``) on /security-admin/callback-numbers.

The whole app on a real socket: agent1 adds and confirms a number on the phone page with the code the real SMS
receiver got, admin1 signs in with a password and a second factor enrolled with a one-time code, approves it, and
the number becomes the one the callback dials. Every approval and every refused one is audited.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.voice.models import CallbackNumber, NumberStatus
from gateway.voice.numbers import usable_number
from gateway.voice.settings import VoiceSettings
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, WG_KEYS, Portal, csrf_of, page_error, sign_in
from tests.gateway.voice.http_apps import Receiver
from tests.support.portal import enrolment_code, passed_second_factor, redeem_enrolment_code, serving_portal
from tests.support.server import serving

PAGE = "/security-admin/callback-numbers"
HTML = {"accept": "text/html"}


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[tuple[Portal, Receiver]]:
    sms = Receiver()
    with serving(sms.app) as sms_url:
        voice = {"changes_need_approval": True, "callback_at_login": False}
        with serving_portal(
            tmp_path,
            db_url,
            engine,
            kind=Portal,
            passwords=PASSWORDS,
            groups=GROUPS,
            certified=WG_KEYS,
            trusted_proxy=True,
            settings={"sms": {"url": f"{sms_url}/sms"}, "voice": voice},
        ) as running:
            yield running, sms


def _agent_confirms_a_number(portal: Portal, sms: Receiver) -> int:
    with portal.client() as agent:
        assert sign_in(agent, "agent1", headers=portal.proxy_headers("agent1")).status_code == 303
        csrf = csrf_of(agent.get("/agent/phone", headers=HTML))
        added = agent.post("/agent/phone/numbers", data={"csrf": csrf, "number": "+8613812345678"}, headers=HTML)
        assert added.status_code == 303, page_error(added)
        number_id = int(re.search(r'data-number="(\d+)"', agent.get("/agent/phone").text).group(1))  # type: ignore[union-attr]
        code = re.search(r"code is (\d+)", sms.bodies()[-1]["text"]).group(1)  # type: ignore[union-attr]
        confirm = f"/agent/phone/numbers/{number_id}/confirm"
        assert agent.post(confirm, data={"csrf": csrf, "code": code}, headers=HTML).status_code == 303
        assert 'data-state="pending_approval"' in agent.get("/agent/phone").text
        assert agent.get(PAGE, headers=HTML).status_code == 403  # an agent cannot approve their own number
        return number_id


def _signed_in_admin(portal: Portal, client: httpx.Client) -> None:
    """admin1's password, then a second factor enrolled with a one-time code from the host (as a first sign-in)."""
    assert sign_in(client, "admin1").status_code == 303
    assert redeem_enrolment_code(client, enrolment_code(portal.engine, portal.directory, "admin1")).status_code == 303
    page = client.get("/login/second-factor", headers=HTML)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret, page.text
    done = client.post("/login/second-factor", data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf": csrf_of(page)})
    assert passed_second_factor(done), done.text


def _approvals(portal: Portal) -> list[tuple[str, str]]:
    with session_scope(portal.engine) as db:
        events = db.exec(select(AuditEvent).where(AuditEvent.action == "voice.number.approve")).all()
        return [(e.actor, e.outcome) for e in events]


def test_a_security_admin_approves_a_confirmed_number_and_only_then_is_it_dialled(
    portal: tuple[Portal, Receiver],
) -> None:
    running, sms = portal
    number_id = _agent_confirms_a_number(running, sms)
    with session_scope(running.engine) as db:
        waiting = db.get(CallbackNumber, number_id)
        assert waiting is not None and waiting.status is NumberStatus.PENDING_APPROVAL
        assert usable_number(db, waiting.person_id, VoiceSettings()) is None  # not dialled while it waits
    with running.client() as admin:
        _signed_in_admin(running, admin)
        listing = admin.get(PAGE, headers=HTML)
        assert listing.status_code == 200
        assert f'data-number="{number_id}" data-login="agent1"' in listing.text
        assert "+86 138****5678" in listing.text and "13812345678" not in listing.text  # masked
        approved = admin.post(f"{PAGE}/{number_id}/approve", data={"csrf": csrf_of(listing)}, headers=HTML)
        assert approved.status_code == 303
        assert f'data-number="{number_id}"' not in admin.get(PAGE, headers=HTML).text
    with session_scope(running.engine) as db:
        number = db.get(CallbackNumber, number_id)
        assert number is not None and (number.status, number.approved_by) == (NumberStatus.CONFIRMED, "admin1")
        assert usable_number(db, number.person_id, VoiceSettings()) == number
    assert _approvals(running) == [("admin1", "approved")]


def test_approving_a_number_that_waits_for_nothing_is_refused_and_audited(portal: tuple[Portal, Receiver]) -> None:
    running, sms = portal
    number_id = _agent_confirms_a_number(running, sms)
    with running.client() as admin:
        _signed_in_admin(running, admin)
        csrf = csrf_of(admin.get(PAGE, headers=HTML))
        assert admin.post(f"{PAGE}/{number_id}/approve", data={"csrf": csrf}, headers=HTML).status_code == 303
        again = admin.post(f"{PAGE}/{number_id}/approve", data={"csrf": csrf}, headers=HTML)
        assert again.status_code == 404
    assert _approvals(running) == [("admin1", "approved"), ("admin1", "refused")]
