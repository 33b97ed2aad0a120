"""Under any concurrency, at most the configured number of guesses for one person reach the real directory.

The throttle reserves an attempt (committed) before the bind, so 50 wrong passwords released at once, under three
spellings of one Samba AD account, each from its own address, give exactly ``limit`` binds — counted by a wrapper
around the real directory object and by the DC's own badPwdCount — on SQLite and on PostgreSQL.
"""

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.sessions.throttle import ThrottleLimits
from tests.directory.samba import SambaDC
from tests.gateway.sessions.guess_counting import bad_password_count, new_account, parallel_wrong_passwords

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("limit", [1, 3])
def test_fifty_parallel_wrong_passwords_reach_the_directory_exactly_limit_times(
    samba_dc: SambaDC, engine: Engine, limit: int
) -> None:
    sam = new_account(samba_dc)
    directory = open_directory(samba_dc.settings(pool_size=8))
    limits = ThrottleLimits(per_account=limit, per_source=1000, window=timedelta(minutes=15))
    try:
        outcome = parallel_wrong_passwords(engine, directory, sam, limits)
    finally:
        directory.close()
    assert outcome.binds == limit
    assert bad_password_count(samba_dc, sam) == limit
    assert outcome.refusals == {"directory.wrong_password": limit, "throttled": 50 - limit}
    with session_scope(engine) as db:  # every refusal, the throttled ones too, has its audit row
        rows = db.exec(select(AuditEvent).where(AuditEvent.action == "session.login")).all()
    assert sorted(r.outcome for r in rows) == sorted(outcome.refusals.elements())
