"""A privileged person's first TOTP enrolment needs more than the password: a one-time enrolment code, audited."""

import json
import re
from datetime import timedelta

import httpx
import pyotp
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.cli.totp import HOST
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.sessions import enrolment_codes
from tests.gateway.sessions.conftest import PASSWORDS, Portal, csrf_of, page_error, sign_in
from tests.support.portal import enrolment_code, passed_second_factor, redeem_enrolment_code

HTML = {"accept": "text/html"}


def _code_outcomes(portal: Portal) -> list[str]:
    with session_scope(portal.engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == "totp.enrolment_code").order_by(col(AuditEvent.seq))
        return [row.outcome for row in db.exec(query)]


def _enrol(portal: Portal, client: httpx.Client, code: str) -> None:
    assert redeem_enrolment_code(client, code).headers["location"] == "/login/second-factor"
    page = client.get("/login/second-factor", headers=HTML)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret, page.text
    done = client.post(
        "/login/second-factor", data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf": csrf_of(page)}, headers=HTML
    )
    assert passed_second_factor(done), done.text


def test_the_password_alone_neither_shows_nor_confirms_an_enrolment(portal: Portal) -> None:
    with portal.client() as intruder:
        assert sign_in(intruder, "admin1").headers["location"] == "/login/second-factor"
        page = intruder.get("/login/second-factor", headers=HTML)
        assert 'id="enrolment-code"' in page.text and "totp-secret" not in page.text
        guess = intruder.post("/login/second-factor", data={"code": "123456", "csrf": csrf_of(page)}, headers=HTML)
        assert guess.status_code == 401
        assert intruder.get("/security-admin", headers=HTML).headers["location"] == "/login"


def test_a_code_works_once_for_its_own_person_before_it_expires(portal: Portal) -> None:
    other_persons = enrolment_code(portal.engine, portal.directory, "sup1")
    expired = enrolment_code(portal.engine, portal.directory, "admin1", clock=lambda: utcnow() - timedelta(hours=25))
    good = enrolment_code(portal.engine, portal.directory, "admin1")
    with portal.client() as owner:
        sign_in(owner, "admin1")
        for refused in (other_persons, expired, "AAAA-BBBB-CCCC-DDDD"):
            answer = redeem_enrolment_code(owner, refused)
            assert answer.status_code == 403 and "enrolment code" in page_error(answer)
        _enrol(portal, owner, good.lower().replace("-", " "))  # typed loosely: case and separators do not matter
    with portal.client() as again:
        sign_in(again, "admin1")
        assert redeem_enrolment_code(again, good).status_code == 403
    assert _code_outcomes(portal) == [
        "issued", "issued", "issued", "refused_unknown", "refused_expired", "refused_unknown", "redeemed",
        "refused_used",
    ]  # fmt: skip


def test_an_enrolment_unlocked_by_one_session_is_not_shown_to_another(portal: Portal) -> None:
    code = enrolment_code(portal.engine, portal.directory, "admin1")
    with portal.client() as owner, portal.client() as intruder:
        sign_in(owner, "admin1")
        assert redeem_enrolment_code(owner, code).status_code == 303
        assert sign_in(intruder, "ADMIN1", PASSWORDS["admin1"]).headers["location"] == "/login/second-factor"
        page = intruder.get("/login/second-factor", headers=HTML)
        assert 'id="enrolment-code"' in page.text and "totp-secret" not in page.text


def test_an_enrolment_code_with_a_nul_is_refused_at_the_door_and_not_kept_in_its_audit_row(portal: Portal) -> None:
    """A code is a secret as a password is: the refusal of one PostgreSQL cannot store names the field, not the code."""
    with portal.client() as owner:
        sign_in(owner, "admin1")
        assert redeem_enrolment_code(owner, "AAAA-BBBB\x00").status_code == 422
    with session_scope(portal.engine) as db:
        [row] = db.exec(select(AuditEvent).where(AuditEvent.action == "http.unstorable_text")).all()
        assert json.loads(row.detail) == {"field": "enrolment_code", "value": "", "requests": 1}


def test_a_security_admin_issues_codes_for_others_never_for_themselves(portal: Portal) -> None:
    with portal.client() as admin:
        sign_in(admin, "admin1")
        _enrol(portal, admin, enrolment_code(portal.engine, portal.directory, "admin1"))
        assert 'href="/security-admin/second-factor"' in admin.get("/security-admin", headers=HTML).text
        page = admin.get("/security-admin/second-factor", headers=HTML)
        own = admin.post("/security-admin/second-factor", data={"login": "Admin1", "csrf": csrf_of(page)}, headers=HTML)
        assert own.status_code == 403 and "another security administrator" in page_error(own)
        issued = admin.post(
            "/security-admin/second-factor", data={"login": "SUP1", "reset": "on", "csrf": csrf_of(page)}, headers=HTML
        )
        assert issued.status_code == 200
        shown = re.search(r'id="enrolment-code">([A-Z2-7-]+)<', issued.text)
        assert shown and "sup1" in issued.text
    assert _code_outcomes(portal)[-2:] == ["refused_self", "issued"]


def test_codes_are_stored_only_as_their_hash(portal: Portal) -> None:
    with session_scope(portal.engine) as db:
        code = enrolment_codes.issue(
            db, portal.directory.find_account("admin1"), issued_by=HOST, issuer_person_id=None, now=utcnow()
        )
        stored = db.exec(select(enrolment_codes.TotpEnrolmentCode)).one()
    assert code.replace("-", "") not in stored.model_dump_json() and len(stored.code_sha256) == 64


def test_every_try_over_the_limit_is_refused_and_audited(portal: Portal) -> None:
    limit = portal.settings.portal.throttle_per_account
    with portal.client() as guesser:
        sign_in(guesser, "admin1")
        for attempt in range(limit + 2):
            answer = redeem_enrolment_code(guesser, f"AAAA-BBBB-CCCC-{attempt:04d}")
            assert answer.status_code == (403 if attempt < limit else 429)
    assert _code_outcomes(portal) == ["refused_unknown"] * limit + ["throttled"] * 2
