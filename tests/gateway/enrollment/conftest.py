"""A whole portal with enrollment on a real socket: the built-in directory with applicants, HR and a security admin,
our CA, and a policy in which on-site agents (the applicants) and the SOHO group both give the agent role."""

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from certs.authority import Authority, init_authority
from gateway.app import create_app
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory, Directory
from gateway.enrollment.handoff import HandOff
from gateway.policies.service import import_policy
from gateway.settings import Settings, load_settings
from tests.support.server import serving

PASSWORDS = {
    "applicant1": "applicant-one-pw",
    "applicant2": "applicant-two-pw",
    "hr1": "hr-one-pw",
    "admin1": "admin-one-pw",
}
GROUPS = {
    "applicant1": ["Onsite-Agents"],
    "applicant2": ["Onsite-Agents"],
    "hr1": ["SOHO-HR"],
    "admin1": ["SOHO-SecurityAdmins"],
}
PHONE = "+8613800138000"


def policy_text(agent_group: str = "SOHO-Agents", onsite: bool = True) -> str:
    """Password sign-in for every role (certificates are the sessions tests' concern); applicants are on-site agents."""
    onsite_group = "  Onsite-Agents:\n    roles: [agent]\n" if onsite else ""
    return (
        "version: 1\nroles:\n"
        + "".join(f"  {r}:\n    require_client_certificate: false\n" for r in ("agent", "hr", "security_admin"))
        + f"groups:\n{onsite_group}  {agent_group}:\n    roles: [agent]\n"
        "  SOHO-HR:\n    roles: [hr]\n  SOHO-SecurityAdmins:\n    roles: [security_admin]\n"
    )


@dataclass
class Portal:
    settings: Settings
    engine: Engine
    authority: Authority
    directory: Directory
    base_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=30)

    def handoff(self) -> HandOff:
        return HandOff(self.directory, self.authority, timedelta(hours=24), self.settings.enrollment.agent_group)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def sign_in(client: httpx.Client, login: str, password: str | None = None) -> httpx.Response:
    page = client.get("/login")
    form = {"username": login, "password": password or PASSWORDS[login], "csrf": csrf_of(page)}
    return client.post("/login", data=form, headers={"accept": "text/html"})


@contextmanager
def signed_in(portal: Portal, login: str, password: str | None = None) -> Iterator[httpx.Client]:
    with portal.client() as client:
        answer = sign_in(client, login, password)
        assert answer.status_code == 303, answer.text
        yield client


def post_form(client: httpx.Client, page: str, action: str, data: dict[str, str], **kwargs: object) -> httpx.Response:
    """Fetch ``page`` for the session's CSRF token, then post ``data`` to ``action`` as a browser does."""
    token = csrf_of(client.get(page, headers={"accept": "text/html"}))
    return client.post(action, data={**data, "csrf": token}, headers={"accept": "text/html"}, **kwargs)  # type: ignore[arg-type]


def wait_for(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@cache
def _password_hashes() -> dict[str, str]:
    """Hashed once per run: argon2 is slow on purpose, and every test starts from the same people."""
    hasher = PasswordHasher()
    return {login: hasher.hash(password) for login, password in PASSWORDS.items()}


def write_builtin_directory(path: Path) -> None:
    """The built-in directory's file (its documented shape), with the test people."""
    users = {
        login: {"password_hash": digest, "groups": GROUPS[login], "display_name": login.title()}
        for login, digest in _password_hashes().items()
    }
    path.write_text(json.dumps({"users": users}), encoding="utf-8")


@contextmanager
def running_portal(
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    directory: Directory | None = None,
    policy: str | None = None,
    **enrollment: object,
) -> Iterator[Portal]:
    """Serve the app (built by ``create_app``) on a loopback port."""
    settings = load_settings(
        data_dir=tmp_path, database_url=db_url, ca={"passphrase": "enrollment-test"}, enrollment=enrollment
    )
    authority = init_authority(settings.ca_directory, "enrollment-test", "Corp Example", datetime.now(UTC))
    if directory is None:
        write_builtin_directory(settings.directory_settings.builtin_file)  # type: ignore[arg-type]
        directory = BuiltinDirectory(settings.directory_settings)
    with session_scope(engine) as db:
        import_policy(db, policy or policy_text(), actor="test", source="", now=datetime.now(UTC))
    app = create_app(settings, engine=engine, authority=authority, directory=directory, run_jobs=False)
    with serving(app) as base_url:
        yield Portal(settings, engine, authority, directory, base_url)


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    with running_portal(tmp_path, db_url, engine) as running:
        yield running
