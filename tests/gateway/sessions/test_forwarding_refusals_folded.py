"""Forwarding headers without the proxy's proof are audited without letting anyone flood the audit log: the refusals
of one peer and outcome are folded into at most one row a minute, whose counts add up to the requests."""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.folding import RefusalFolder, flush_due
from gateway.audit.models import AuditEvent
from gateway.audit.service import verify_chain
from gateway.clock import utcnow
from gateway.db import session_scope
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS
from tests.support import portal as whole

REQUESTS = 200


@dataclass
class FoldingPortal(whole.Portal):
    folded_refusals: RefusalFolder


@contextmanager
def _folder_of(app: FastAPI) -> Iterator[Mapping[str, Any]]:
    yield {"folded_refusals": app.state.folded_refusals}


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[FoldingPortal]:
    with whole.serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=FoldingPortal,
        passwords=PASSWORDS,
        groups=GROUPS,
        trusted_proxy=True,
        alongside=_folder_of,
    ) as running:
        yield running


def _ignored(portal: FoldingPortal) -> list[AuditEvent]:
    with session_scope(portal.engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == "proxy.forwarding_ignored")
        return list(db.exec(query.order_by(col(AuditEvent.seq))).all())


def test_two_hundred_forged_forwardings_write_a_few_rows_whose_counts_add_up_to_two_hundred(
    portal: FoldingPortal,
) -> None:
    with portal.client() as local_process:
        for _ in range(REQUESTS):
            answer = local_process.get("/login", headers={"X-Forwarded-For": "198.51.100.7"})
            assert answer.status_code == 200
    during = _ignored(portal)
    assert 1 <= len(during) <= 2  # one row a minute: two only if the loop crossed a minute

    # The count of the last minute is written by the job once its window has passed.
    assert flush_due(portal.engine, portal.folded_refusals, utcnow() + timedelta(minutes=2)) == 1
    rows = _ignored(portal)
    assert len(rows) <= 3
    assert sum(json.loads(row.detail)["requests"] for row in rows) == REQUESTS
    assert {(row.source, row.outcome, row.target) for row in rows} == {("127.0.0.1", "proxy_secret_missing", "/login")}
    assert all(json.loads(row.detail)["headers"] == ["x-forwarded-for"] for row in rows)
    with session_scope(portal.engine) as db:
        assert verify_chain(db).intact
