"""A whole portal on a real socket: our CA, the built-in directory with a user per role, and an agent certificate."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine

from certs.authority import Authority, init_authority
from gateway.app import create_app
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory
from gateway.pki import service as pki
from gateway.settings import Settings, load_settings
from tests.support.server import serving

PASSWORDS = {
    "agent1": "agent-one-pw",
    "agent2": "agent-two-pw",
    "sup1": "sup-one-pw",
    "admin1": "admin-one-pw",
    "hr1": "hr-one-pw",
    "outsider": "outsider-pw",
}
GROUPS = {
    "agent1": ["SOHO-Agents"],
    "agent2": ["SOHO-Agents"],
    "sup1": ["SOHO-Supervisors"],
    "admin1": ["SOHO-SecurityAdmins"],
    "hr1": ["SOHO-HR"],
    "outsider": [],
}
WG_KEYS = {
    "agent1": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
    "agent2": "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=",
}


@dataclass
class Portal:
    settings: Settings
    engine: Engine
    authority: Authority
    directory: BuiltinDirectory
    base_url: str
    certificates: dict[str, x509.Certificate]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=10)

    def proxy_headers(self, login: str) -> dict[str, str]:
        """What a trusted reverse proxy forwards for a browser that presented ``login``'s certificate."""
        pem = self.certificates[login].public_bytes(serialization.Encoding.PEM).decode()
        return {"X-SSL-Client-Cert": quote(pem), "X-Forwarded-For": "198.51.100.7"}


def sign_in(
    client: httpx.Client, login: str, password: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Fetch the form (for its CSRF token and cookie), then post it, as a browser does."""
    page = client.get("/login", headers=headers)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    form = {
        "username": login,
        "password": PASSWORDS.get(login, "") if password is None else password,
        "csrf": csrf.group(1),
    }
    return client.post("/login", data=form, headers={**(headers or {}), "accept": "text/html"})


def page_error(response: httpx.Response) -> str:
    found = re.search(r'id="error">([^<]+)<', response.text)
    return found.group(1) if found else ""


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    settings = load_settings(
        data_dir=tmp_path,
        database_url=db_url,
        ca={"passphrase": "portal-test"},
        portal={"trusted_proxies": ["127.0.0.1/32"]},
    )
    now = datetime.now(UTC)
    authority = init_authority(settings.ca_directory, "portal-test", "Corp Example", now)
    directory = BuiltinDirectory(settings.directory_settings)
    for login, password in PASSWORDS.items():
        directory.add_user(login, password, groups=GROUPS[login], display_name=login.title())
    certificates = {}
    with session_scope(engine) as db:
        for login, key in WG_KEYS.items():
            issued = pki.issue_agent_certificate(
                db,
                authority,
                upn=f"{login}@corp.example",
                account=login,
                wireguard_key=key,
                actor=pki.Actor("test"),
                now=now,
                lifetime=timedelta(days=7),
                urls=pki.publication_urls("http://x"),
            )
            certificates[login] = issued.cert
    app = create_app(settings, engine=engine, authority=authority, directory=directory, run_jobs=False)
    with serving(app) as base_url:
        yield Portal(settings, engine, authority, directory, base_url, certificates)
