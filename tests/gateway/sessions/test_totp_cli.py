"""``sohogw totp issue-code`` on the host: the first security admin's way to an enrolment code, audited."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.cli import cli
from gateway.db import session_scope
from gateway.sessions.models import TotpEnrolmentCode, TotpSecret
from gateway.settings import get_settings
from tests.support.portal import write_builtin_directory


@pytest.fixture
def run(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """The CLI against this test's database and a built-in directory holding admin1."""
    people, groups = {"admin1": "admin-one-pw"}, {"admin1": ["SOHO-SecurityAdmins"]}
    write_builtin_directory(tmp_path / "directory.json", people, groups)
    monkeypatch.setenv("SOHOGW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SOHOGW_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli, list(args))
    get_settings.cache_clear()


def test_the_host_issues_a_code_for_any_spelling_and_audits_it(run: Callable[..., Result], engine: Engine) -> None:
    done = run("totp", "issue-code", "ADMIN1")
    assert done.exit_code == 0, done.output
    code = done.output.strip().rsplit(" ", 1)[-1]
    assert done.output.startswith("enrolment code for admin1: ") and len(code.replace("-", "")) == 16
    with session_scope(engine) as db:
        stored = db.exec(select(TotpEnrolmentCode)).one()
        audit = db.exec(select(AuditEvent).where(AuditEvent.action == "totp.enrolment_code")).one()
    assert (stored.person_id, stored.issued_by, stored.used_at) == ("builtin:admin1", "host:sohogw", None)
    assert (audit.actor, audit.target, audit.outcome) == ("host:sohogw", "admin1", "issued")


def test_reset_forgets_the_enrolled_secret_and_an_unknown_name_is_an_error(
    run: Callable[..., Result], engine: Engine
) -> None:
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        enrolled = TotpSecret(person_id="builtin:admin1", login="admin1", secret="JBSWY3DP", created_at=now)
        enrolled.confirmed_at = now
        db.add(enrolled)
    assert run("totp", "issue-code", "admin1", "--reset").exit_code == 0
    with session_scope(engine) as db:
        assert db.get(TotpSecret, "builtin:admin1") is None
    unknown = run("totp", "issue-code", "nobody")
    assert unknown.exit_code == 1 and "no account is named 'nobody'" in unknown.output
