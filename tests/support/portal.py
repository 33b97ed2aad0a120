"""The whole portal on a real loopback socket, built one way for every test folder that needs it.

Our CA, the built-in directory holding the folder's people, agent certificates issued through the PKI service (as
enrollment issues them), optionally a policy, and the app from ``create_app`` served by ``serving``. Folders choose
the people, the settings and the policy; the building stays here.
"""

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy import Engine

from certs.authority import Authority, init_authority
from gateway.app import create_app
from gateway.cli.totp import HOST
from gateway.clock import Clock, utcnow
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory, Directory
from gateway.directory.builtin import password_hash
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.sessions import enrolment_codes
from gateway.sessions.service import ROLE_PAGES
from gateway.settings import Settings, load_settings
from tests.support.server import serving

CA_PASSPHRASE = "portal-test"
PROXY_SECRET = "proxy-secret-of-the-tests-0123456789abcdef"
"""What the test client sends to prove it is the reverse proxy when a portal is built with ``trusted_proxy``."""
PROXY_ADDRESSES = ["127.0.0.1/32"]
"""Where the tests' reverse proxy (the test client, nginx, HAProxy) connects from: the portal's ``proxy_addresses``."""
PROXY_ENVIRONMENT = {
    "SOHOGW_PORTAL__PROXY_SECRET": PROXY_SECRET,
    "SOHOGW_PORTAL__PROXY_ADDRESSES": json.dumps(PROXY_ADDRESSES),
}
"""The same two settings for a node started as its own process."""


@dataclass
class Portal:
    settings: Settings
    engine: Engine
    authority: Authority
    directory: Directory
    base_url: str
    certificates: dict[str, x509.Certificate]
    client_timeout: ClassVar[float] = 10

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=self.client_timeout)

    def proxy_headers(self, login: str) -> dict[str, str]:
        """What a trusted reverse proxy forwards for a browser that presented ``login``'s certificate."""
        pem = self.certificates[login].public_bytes(serialization.Encoding.PEM).decode()
        return {
            "X-SSL-Client-Cert": quote(pem),
            "X-Forwarded-For": "198.51.100.7",
            "X-Sohogw-Proxy-Secret": PROXY_SECRET,
        }


P = TypeVar("P", bound=Portal)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def page_error(response: httpx.Response) -> str:
    """The message the portal's page shows a person whose request it refused ("" when none)."""
    found = re.search(r'id="error">([^<]+)<', response.text)
    return found.group(1) if found else ""


def sign_in(client: httpx.Client, login: str, password: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """Fetch the form (for its CSRF token and cookie), then post it, as a browser does."""
    page = client.get("/login", headers=headers)
    form = {"username": login, "password": password, "csrf": csrf_of(page)}
    return client.post("/login", data=form, headers={**(headers or {}), "accept": "text/html"})


def enrolment_code(engine: Engine, directory: Directory, login: str, clock: Clock = utcnow) -> str:
    """A one-time second-factor enrolment code for a privileged person, issued as ``sohogw totp issue-code`` does."""
    with session_scope(engine) as db:
        account = directory.find_account(login)
        return enrolment_codes.issue(db, account, issued_by=HOST, issuer_person_id=None, now=clock())


def redeem_enrolment_code(client: httpx.Client, code: str) -> httpx.Response:
    """Post the enrolment code from the second-factor page, as the person does before they are shown the QR code."""
    page = client.get("/login/second-factor", headers={"accept": "text/html"})
    form = {"enrolment_code": code, "csrf": csrf_of(page)}
    return client.post("/login/second-factor/enrolment-code", data=form, headers={"accept": "text/html"})


@cache
def _password_hash(password: str) -> str:
    """Hashed once per run, as the directory hashes it: argon2 is slow on purpose, and every test starts from the
    same people."""
    return password_hash(password)


def write_builtin_directory(path: Path, passwords: Mapping[str, str], groups: Mapping[str, Sequence[str]]) -> None:
    """The built-in directory's file (its documented shape) holding ``passwords``' people in their ``groups``."""
    users = {
        login: {"password_hash": _password_hash(password), "groups": list(groups[login]), "display_name": login.title()}
        for login, password in passwords.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"users": users}), encoding="utf-8")


def _issue_certificates(
    engine: Engine, authority: Authority, wireguard_keys: Mapping[str, str], now: datetime
) -> dict[str, x509.Certificate]:
    certificates = {}
    with session_scope(engine) as db:
        for login, key in wireguard_keys.items():
            issued = pki.issue_agent_certificate(
                db,
                authority,
                upn=f"{login}@corp.example",
                account=login,
                wireguard_key=key,
                person_id=None,
                actor=pki.Actor("test"),
                now=now,
                lifetime=timedelta(days=7),
                urls=pki.publication_urls("http://x"),
            )
            certificates[login] = issued.cert
    return certificates


@contextmanager
def serving_portal(
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    *,
    kind: type[P],
    passwords: Mapping[str, str],
    groups: Mapping[str, Sequence[str]],
    certified: Mapping[str, str] | None = None,
    directory: Directory | None = None,
    policy: str | None = None,
    trusted_proxy: bool = False,
    settings: Mapping[str, Any] | None = None,
    overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
    run_jobs: bool = False,
    clock: Clock = utcnow,
    alongside: Callable[[FastAPI], AbstractContextManager[Mapping[str, Any]]] | None = None,
    tls: dict[str, object] | None = None,
) -> Iterator[P]:
    """Serve the whole portal on a loopback port until the block ends.

    ``kind`` is the folder's ``Portal`` (this one or a subclass). ``passwords`` and ``groups`` fill the built-in
    directory (ignored when another ``directory`` is given); ``certified`` maps the logins that get an agent
    certificate to their WireGuard key; ``policy`` is imported as the policy text; ``trusted_proxy`` trusts the test
    client as the reverse proxy; ``settings`` adds sections to ``load_settings``; ``overrides`` are FastAPI
    dependency overrides; ``clock`` is the app's one clock (the CA, certificates and policy are dated by it too);
    ``alongside`` is entered with the built app before it serves and left after it stops (a folder's own component,
    such as the seat broker), and what it yields is passed to ``kind`` as its extra fields; ``tls`` serves HTTPS
    (``gateway.web.tls.tls_options``).
    """
    sections = dict(settings or {})
    if trusted_proxy:
        proxy = {"proxy_secret": PROXY_SECRET, "proxy_addresses": PROXY_ADDRESSES}
        sections["portal"] = {**sections.get("portal", {}), **proxy}
    loaded = load_settings(data_dir=tmp_path, database_url=db_url, ca={"passphrase": CA_PASSPHRASE}, **sections)
    now = clock()
    authority = init_authority(loaded.ca_directory, CA_PASSPHRASE, "Corp Example", now)
    if directory is None:
        write_builtin_directory(loaded.directory_settings.builtin_file, passwords, groups)  # type: ignore[arg-type]
        directory = BuiltinDirectory(loaded.directory_settings)
    certificates = _issue_certificates(engine, authority, certified or {}, now)
    if policy is not None:
        with session_scope(engine) as db:
            import_policy(db, policy, actor="test", source="", now=now)
    app = create_app(loaded, engine=engine, clock=clock, authority=authority, directory=directory, run_jobs=run_jobs)
    app.dependency_overrides.update(overrides or {})
    around = alongside(app) if alongside else nullcontext({})
    with around as fields, serving(app, tls=tls) as base_url:
        yield kind(loaded, engine, authority, directory, base_url, certificates, **fields)


def passed_second_factor(answer: httpx.Response) -> bool:
    """The second-factor form was accepted: on to the portal, or (a fresh enrolment) the "enrolled" page with the
    recovery codes, shown once before the person goes on."""
    return answer.headers.get("location") in ROLE_PAGES.values() or (
        answer.status_code == 200 and 'id="enrolled"' in answer.text
    )
