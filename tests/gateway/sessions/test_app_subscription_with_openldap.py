"""The app runs OpenLDAP's change subscription itself while it serves (``create_app`` with its jobs on, the poll at an
hour), and stops it with the app.

In a module of its own, with no other subscription in the process: a subscription delivers what it saw to every
listener of the process's one bus (``gateway.events.publish``), so another gateway subscribed to the same slapd
(test_directory_changes_with_openldap.py's, module-scoped) ended this app's session with the app's own subscription
silenced, and the test passed there without proving it.
"""

import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE
from sqlmodel import select

from gateway.app import create_app
from gateway.db import make_engine, session_scope
from gateway.directory import open_directory
from gateway.policies.service import import_policy
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.settings import load_settings
from policy import DEFAULT_POLICY_FILE
from tests.directory import slapd as openldap
from tests.gateway.sessions.directory_change_checks import PATIENCE, wait_for
from tests.support import portal as whole
from tests.support.server import serving
from tests.support.sqlite import copy_sqlite
from tests.support.workers import wait_for as workers_wait_for

pytestmark = pytest.mark.e2e


def _watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "directory-watch" and t.is_alive()]


def test_the_app_runs_the_subscription_while_it_serves_and_stops_it_after(
    slapd: openldap.Slapd, tmp_path: Path, sqlite_template: Path
) -> None:
    """``create_app`` with its jobs on (poll at an hour): a supervisor taken out of soho-supervisors loses the
    session through the app's own subscription, and shutting the app down leaves no subscription thread."""
    login = f"sup.{secrets.token_hex(3)}"
    supervisors, dn = openldap.group_dn("soho-supervisors"), openldap.user_dn(login)
    with slapd.admin() as admin:
        person = {"objectClass": ["inetOrgPerson"], "uid": login, "cn": login, "sn": login}
        assert admin.add(dn, attributes={**person, "userPassword": openldap.PASSWORD}), admin.result
        assert admin.modify(supervisors, {"member": [(MODIFY_ADD, [dn])]}), admin.result
    url = copy_sqlite(sqlite_template, tmp_path / "sohogw.db")
    engine = make_engine(url)
    policy = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        "\n  SOHO-Supervisors:\n", f'\n  "{supervisors}":\n'
    )
    with session_scope(engine) as db:
        import_policy(db, policy, actor="test", source="", now=datetime.now(UTC))
    settings = load_settings(
        data_dir=tmp_path, database_url=url, portal={"revalidate_seconds": 3600}, seats={"enabled": False}
    )
    directory = open_directory(slapd.settings())
    assert _watch_threads() == [], "another gateway's subscription in this process would bring this app its changes"
    try:
        app = create_app(settings, engine=engine, directory=directory)
        with serving(app) as base_url, httpx.Client(base_url=base_url) as client:
            assert workers_wait_for(lambda: len(_watch_threads()) == 1, PATIENCE)
            assert whole.sign_in(client, login, openldap.PASSWORD).status_code == 303
            with session_scope(engine) as db:
                session_id = db.exec(select(HomeSession).where(HomeSession.login == login)).one().id
            with slapd.admin() as admin:
                assert admin.modify(supervisors, {"member": [(MODIFY_DELETE, [dn])]}), admin.result

            def ended() -> HomeSession:
                with session_scope(engine) as db:
                    session = db.get(HomeSession, session_id)
                    assert session is not None
                    return session

            wait_for("the supervisor's session to end", lambda: ended().state is SessionState.ENDED)
            assert ended().end_reason is EndReason.ROLE_REMOVED
        assert _watch_threads() == []
    finally:
        engine.dispose()
