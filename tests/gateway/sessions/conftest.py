"""A whole portal on a real socket: our CA, the built-in directory with a user per role, and an agent certificate."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support import portal as whole
from tests.support.portal import Portal, csrf_of, page_error

__all__ = ["GROUPS", "PASSWORDS", "WG_KEYS", "Portal", "csrf_of", "page_error", "sign_in"]

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


def sign_in(
    client: httpx.Client, login: str, password: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Sign in with ``login``'s own password unless ``password`` is given (an unknown login gets "")."""
    return whole.sign_in(client, login, PASSWORDS.get(login, "") if password is None else password, headers)


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    with whole.serving_portal(
        tmp_path, db_url, engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, certified=WG_KEYS, trusted_proxy=True
    ) as running:
        yield running
