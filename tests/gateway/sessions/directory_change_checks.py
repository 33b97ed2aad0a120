"""What the directory-change tests (Active Directory and OpenLDAP) wait for and count."""

import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlmodel import col, func, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.sessions.directory_changes import SUBSCRIPTION_AUDIT_ACTION

PATIENCE = 30.0  # seconds: a bound for a loaded machine, not the promise (bench/bench_directory_change.py has that)


def wait_for(what: str, condition: Callable[[], bool], explain: Callable[[], str] = lambda: "") -> None:
    """Wait until ``condition`` holds; a timeout says what did not happen and, from ``explain``, what was seen."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {PATIENCE:g} s. {explain()}"
        time.sleep(0.05)


def subscription_audit(engine: Engine) -> dict[str, int]:
    """How many ``directory.subscription`` audit rows there are, by outcome (``lost``, ``restored``)."""
    with session_scope(engine) as db:
        rows = db.exec(
            select(AuditEvent.outcome, func.count())
            .where(col(AuditEvent.action) == SUBSCRIPTION_AUDIT_ACTION)
            .group_by(col(AuditEvent.outcome))
        ).all()
    return dict(rows)
