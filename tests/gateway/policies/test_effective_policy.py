"""The policy in force for a set of groups, kept per version and set of groups: each answer is what evaluating the
document in force would say at that moment, and a new version counts at the very next call."""

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session

from gateway.clock import utcnow
from gateway.policies.service import current_policy, effective_policy, import_policy
from policy import PolicyError, evaluate

AGENTS_IDLE_10 = """
version: 1
groups:
  SOHO-Agents: {roles: [agent], idle_timeout: 10m}
  SOHO-Supervisors: {roles: [supervisor]}
"""
AGENTS_IDLE_5 = AGENTS_IDLE_10.replace("10m", "5m")


def test_each_answer_is_the_evaluation_of_the_policy_in_force_at_its_own_time(db: Session) -> None:
    now = utcnow()
    import_policy(db, AGENTS_IDLE_10, actor="admin1", source="", now=now)
    for groups, at in (
        (["SOHO-Agents"], now),
        (["SOHO-Supervisors"], now),
        (["SOHO-Agents"], now + timedelta(hours=3)),
    ):
        assert effective_policy(db, groups, at) == evaluate(current_policy(db), groups, at)
    assert effective_policy(db, ["SOHO-Agents"], now + timedelta(hours=3)).evaluated_at == now + timedelta(hours=3)
    assert effective_policy(db, ["SOHO-Supervisors", "SOHO-Agents"], now).roles == {"agent", "supervisor"}


def test_a_new_version_counts_at_the_next_call(db: Session) -> None:
    now = utcnow()
    import_policy(db, AGENTS_IDLE_10, actor="admin1", source="", now=now)
    assert effective_policy(db, ["SOHO-Agents"], now).idle_timeout == timedelta(minutes=10)
    import_policy(db, AGENTS_IDLE_5, actor="admin1", source="", now=now + timedelta(seconds=1))
    assert effective_policy(db, ["SOHO-Agents"], now).idle_timeout == timedelta(minutes=5)


def test_a_time_without_a_zone_is_refused_as_evaluate_refuses_it(db: Session) -> None:
    """Shifts are compared in UTC: a naive time is a caller's bug, refused even when the evaluation is kept."""
    effective_policy(db, ["SOHO-Agents"], utcnow())
    with pytest.raises(PolicyError, match="time-zone-aware"):
        effective_policy(db, ["SOHO-Agents"], datetime(2026, 12, 7, 9, 0))


def test_a_kept_evaluation_cannot_be_changed_through_one_answer(db: Session) -> None:
    """Every sign-in with the same groups shares one kept evaluation: a caller that wrote into its answer's reasons
    would change what the policy page explains to everyone else."""
    now = utcnow()
    import_policy(db, AGENTS_IDLE_10, actor="admin1", source="", now=now)
    first = effective_policy(db, ["SOHO-Agents"], now)
    with pytest.raises(TypeError):
        first.reasons["idle_timeout"] = "changed by one caller"  # type: ignore[index]
    assert effective_policy(db, ["SOHO-Agents"], now).explain("idle_timeout") != "changed by one caller"
