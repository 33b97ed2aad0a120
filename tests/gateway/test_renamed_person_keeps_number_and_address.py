"""Against a real Samba AD DC: an account renamed in the directory is the same person at the portal.

The callback number the agent confirmed with a texted code is still theirs (no new number to re-verify, the callback
is placed), and their tunnel has the same addresses, because both are held by the directory's stable id
(``objectGUID``), not by the account name.
"""

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ldap3 import MODIFY_REPLACE
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.pki import service as pki
from gateway.voice.models import CallbackNumber
from gateway.vpn.controller import VpnController
from gateway.vpn.settings import VpnSettings
from tests.directory import samba
from tests.directory.samba import SambaDC, group_dn, user_dn
from tests.gateway.voice.http_apps import Receiver
from tests.support.portal import Portal, csrf_of, page_error, serving_portal, sign_in
from tests.support.server import serving
from tests.vpn.keys import key_pair

pytestmark = pytest.mark.e2e
HTML = {"accept": "text/html"}
PHONE = "/agent/phone"
NUMBER = "+8613812345678"
POLICY = f"""\
version: 1
roles:
  agent: {{require_client_certificate: true}}
groups:
  "{group_dn("SOHO-Agents")}": {{roles: [agent]}}
"""


def _add_agent(dc: SambaDC, sam: str) -> None:
    conn = dc.admin()
    assert conn.add(user_dn(sam), attributes={
        "objectClass": ["user"], "sAMAccountName": sam, "userPrincipalName": f"{sam}@corp.example",
        "displayName": sam, "unicodePwd": f'"{samba.PASSWORD}"'.encode("utf-16-le"), "userAccountControl": "512",
    }), conn.result  # fmt: skip
    assert conn.modify(group_dn("SOHO-Agents"), {"member": [("MODIFY_ADD", [user_dn(sam)])]}), conn.result
    conn.unbind()


def _rename(dc: SambaDC, old: str, new: str) -> None:
    """As an administrator renames a person: the entry's CN, its sAMAccountName and its UPN."""
    conn = dc.admin()
    assert conn.modify_dn(user_dn(old), f"CN={new}"), conn.result
    changes = {
        "sAMAccountName": [(MODIFY_REPLACE, [new])],
        "userPrincipalName": [(MODIFY_REPLACE, [f"{new}@corp.example"])],
    }
    assert conn.modify(user_dn(new), changes), conn.result
    conn.unbind()


def _certify(portal: Portal, sam: str) -> None:
    """The agent certificate for the account as it is named now (a rename brings a new certificate)."""
    with session_scope(portal.engine) as db:
        issued = pki.issue_agent_certificate(
            db,
            portal.authority,
            upn=f"{sam}@corp.example",
            account=sam,
            wireguard_key=key_pair()[1],
            person_id=None,
            actor=pki.Actor("test"),
            now=utcnow(),
            lifetime=timedelta(days=7),
            urls=pki.publication_urls("http://x"),
        )
    portal.certificates[sam] = issued.cert


@pytest.fixture
def sms() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serving(receiver.app) as url:
        yield receiver, url


@pytest.fixture
def portal(
    samba_dc: SambaDC, tmp_path: Path, db_url: str, engine: Engine, sms: tuple[Receiver, str]
) -> Iterator[Portal]:
    @contextmanager
    def vpn(app: FastAPI) -> Iterator[Mapping[str, Any]]:
        settings = VpnSettings(enabled=True, endpoint="vpn.corp.example:51820")
        controller = VpnController(engine, settings, tmp_path)
        controller.public_key = key_pair()[1]  # as start() sets it, without bringing an interface up
        app.state.vpn = controller
        yield {}

    directory = open_directory(samba_dc.settings())
    sections = {"sms": {"url": f"{sms[1]}/sms"}, "voice": {"callback_at_login": False}}
    with serving_portal(
        tmp_path, db_url, engine, kind=Portal, passwords={}, groups={}, directory=directory, policy=POLICY,
        trusted_proxy=True, settings=sections, alongside=vpn,
    ) as running:  # fmt: skip
        yield running
    directory.close()


def _signed_in(portal: Portal, client: httpx.Client, sam: str) -> None:
    _certify(portal, sam)
    client.headers.update(portal.proxy_headers(sam))  # the reverse proxy forwards the certificate on every request
    answer = sign_in(client, sam, samba.PASSWORD)
    assert answer.status_code == 303, page_error(answer)


def _tunnel_address(client: httpx.Client) -> str:
    config = client.get("/vpn/config")
    assert config.status_code == 200, config.text
    found = re.search(r"^Address = (.+)$", config.text, re.MULTILINE)
    assert found is not None, config.text
    return found.group(1)


def _confirm_number(portal: Portal, client: httpx.Client, texts: Receiver) -> None:
    page = client.get(PHONE, headers=HTML)
    added = client.post(f"{PHONE}/numbers", data={"number": NUMBER, "csrf": csrf_of(page)}, headers=HTML)
    assert added.status_code == 303, page_error(added)
    code = re.search(r"code is (\d+)", texts.bodies()[-1]["text"])
    assert code is not None
    with session_scope(portal.engine) as db:
        number_id = db.exec(select(CallbackNumber.id).where(CallbackNumber.e164 == NUMBER)).one()
    page = client.get(PHONE, headers=HTML)
    form = {"code": code.group(1), "csrf": csrf_of(page)}
    confirmed = client.post(f"{PHONE}/numbers/{number_id}/confirm", data=form, headers=HTML)
    assert confirmed.status_code == 303, page_error(confirmed)


def test_a_renamed_account_keeps_its_confirmed_callback_number_and_its_tunnel_address(
    portal: Portal, samba_dc: SambaDC, sms: tuple[Receiver, str]
) -> None:
    old, new = f"before-{uuid.uuid4().hex[:6]}", f"after-{uuid.uuid4().hex[:6]}"
    _add_agent(samba_dc, old)
    with portal.client() as client:
        _signed_in(portal, client, old)
        _confirm_number(portal, client, sms[0])
        address = _tunnel_address(client)
    _rename(samba_dc, old, new)
    with portal.client() as client:
        _signed_in(portal, client, new)
        page = client.get(PHONE, headers=HTML)
        assert "+86 138****5678" in page.text and "awaiting_code" not in page.text, page.text
        ready = client.post("/voice/ready", json={"ready": True}, headers={"X-CSRF-Token": csrf_of(page)})
        assert ready.status_code == 200 and ready.json()["number"] == "+86 138****5678", ready.text
        assert _tunnel_address(client) == address
    assert len(sms[0].received) == 1  # the number was never texted again
    with session_scope(portal.engine) as db:
        granted = db.exec(select(AuditEvent).where(AuditEvent.action == "vpn.lease")).all()
    assert [row.target for row in granted] == [old, new]  # shown by the name of the day, held by one person
    assert len({json.loads(row.detail)["person"] for row in granted}) == 1
