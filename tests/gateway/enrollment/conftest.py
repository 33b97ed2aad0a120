"""A whole portal with enrollment on a real socket: the built-in directory with applicants, HR and a security admin,
our CA, and a policy in which on-site agents (the applicants) and the SOHO group both give the agent role."""

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, Page
from sqlalchemy import Engine

from gateway.directory import Directory
from gateway.enrollment.deps import handoff_of
from gateway.enrollment.handoff import HandOff
from gateway.enrollment.workers import enrollment_workers
from tests.support import portal as whole
from tests.support.browser import sign_in_page
from tests.support.portal import csrf_of
from tests.support.workers import alongside_app

PASSWORDS = {
    "applicant1": "applicant-one-pw",
    "applicant2": "applicant-two-pw",
    "hr1": "hr-one-pw",
    "admin1": "admin-one-pw",
    "sup1": "sup-one-pw",
}
GROUPS = {
    "applicant1": ["Onsite-Agents"],
    "applicant2": ["Onsite-Agents"],
    "hr1": ["SOHO-HR"],
    "admin1": ["SOHO-SecurityAdmins"],
    "sup1": ["SOHO-Supervisors"],
}
PHONE = "+8613800138000"


def policy_text(agent_group: str = "SOHO-Agents", onsite: bool = True) -> str:
    """Password sign-in for every role (certificates are the sessions tests' concern); applicants are on-site agents."""
    onsite_group = "  Onsite-Agents:\n    roles: [agent]\n" if onsite else ""
    return (
        "version: 1\nroles:\n"
        + "".join(
            f"  {r}:\n    require_client_certificate: false\n" for r in ("agent", "hr", "security_admin", "supervisor")
        )
        + f"groups:\n{onsite_group}  {agent_group}:\n    roles: [agent]\n"
        "  SOHO-HR:\n    roles: [hr]\n  SOHO-SecurityAdmins:\n    roles: [security_admin]\n"
        "  SOHO-Supervisors:\n    roles: [supervisor]\n"
    )


class Portal(whole.Portal):
    """The whole portal, with the hand-off an approval runs; HR's pages may take their time."""

    client_timeout = 30.0

    def handoff(self) -> HandOff:
        return HandOff(self.directory, self.authority, timedelta(hours=24), self.settings.enrollment.agent_group)


def give_upns(portal: Portal) -> None:
    """Give the built-in directory's people the UPNs (``<login>@corp.example``) a certificate must name: the issue
    page writes into one only the UPN of the approved person's account."""
    path = portal.settings.directory_settings.builtin_file
    assert path is not None
    data = json.loads(path.read_text(encoding="utf-8"))
    for login, user in data["users"].items():
        user["upn"] = f"{login}@corp.example"
    path.write_text(json.dumps(data), encoding="utf-8")


def sign_in(client: httpx.Client, login: str, password: str | None = None) -> httpx.Response:
    return whole.sign_in(client, login, password or PASSWORDS[login])


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


ONE_DATABASE_KIND = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
"""For the browser tier: one database kind is enough there, the HTTP tests cover both."""


def signed_in_page(context: BrowserContext, login: str) -> Page:
    """A new page of `context`, signed in as `login` through the form."""
    page = context.new_page()
    sign_in_page(page, login, PASSWORDS[login])
    return page


@contextmanager
def running_portal(
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    directory: Directory | None = None,
    policy: str | None = None,
    **enrollment: object,
) -> Iterator[Portal]:
    """The whole portal with the test people (unless another ``directory`` is given) and the enrollment policy, and
    enrollment's workers running (the group membership, the CSV import)."""

    def workers(app: FastAPI) -> AbstractContextManager[Mapping[str, object]]:
        state = app.state
        return alongside_app(
            enrollment_workers(engine, state.settings.enrollment, state.clock, handoff_of(state)), engine
        )

    with whole.serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=Portal,
        passwords=PASSWORDS,
        groups=GROUPS,
        directory=directory,
        policy=policy or policy_text(),
        settings={"enrollment": enrollment},
        alongside=workers,
    ) as running:
        yield running


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    with running_portal(tmp_path, db_url, engine) as running:
        yield running
