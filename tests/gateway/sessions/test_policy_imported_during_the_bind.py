"""A policy imported while a sign-in's bind is under way counts for that sign-in: it is judged on the policy in force
once the password is known to be right, not on the one read before the password went to the directory (a round trip
saved that way let a sign-in racing an admin's import escape it; attacker review, reverted)."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from gateway.db import session_scope
from gateway.directory import Account, DirectoryUser
from gateway.policies.service import current_policy, import_policy
from gateway.sessions.errors import LoginFailed
from gateway.sessions.login import LoginRequest, LoginResult, LoginServices, login
from gateway.sessions.models import HomeSession, SessionState
from tests.gateway.sessions.test_sign_in_sees_changes_at_once import (
    PASSWORD,
    POLICY,
    POLICY_WITHOUT_AGENTS,
    _our_certificate,
    services,  # noqa: F401 (the fixture)
)

POLICY_WITH_A_SECOND_FACTOR = POLICY.replace(
    "{require_client_certificate: true}", "{require_client_certificate: true, require_totp: true}"
)


def _sign_in_while_an_admin_imports(engine: Engine, services: LoginServices, policy: str) -> LoginResult:  # noqa: F811
    """agent1 signs in with their certificate; another node's admin imports ``policy`` during the bind."""
    certificate = _our_certificate(engine, services).cert
    bind: Callable[[Account, str], DirectoryUser] = services.directory.verify

    def bind_while_an_admin_imports(account: Account, password: str) -> DirectoryUser:
        user = bind(account, password)
        with session_scope(engine) as other:
            import_policy(other, policy, actor="admin", source="", now=datetime.now(UTC))
        return user

    object.__setattr__(services.directory, "verify", bind_while_an_admin_imports)
    with session_scope(engine) as db:
        current_policy(db)  # this process knows the version in force, so the sign-in assumes it: its confirmation runs
    with session_scope(engine) as db:
        request = LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate)
        return login(db, services, request, datetime.now(UTC))


def test_a_role_taken_away_during_the_bind_refuses_the_sign_in(engine: Engine, services: LoginServices) -> None:  # noqa: F811
    with pytest.raises(LoginFailed) as refused:
        _sign_in_while_an_admin_imports(engine, services, POLICY_WITHOUT_AGENTS)
    assert refused.value.reason == "no_role"
    with session_scope(engine) as db:
        assert db.exec(select(HomeSession)).all() == []


def test_a_second_factor_required_during_the_bind_is_asked_for(engine: Engine, services: LoginServices) -> None:  # noqa: F811
    """Judged on the policy read before the bind, the session came out active without the second factor the
    committed policy asks for, and re-validation (which compares roles) left it so for its whole length."""
    result = _sign_in_while_an_admin_imports(engine, services, POLICY_WITH_A_SECOND_FACTOR)
    assert result.needs_second_factor
    with session_scope(engine) as db:
        assert db.exec(select(HomeSession.state)).one() is SessionState.PENDING_SECOND_FACTOR
