"""With AD or OpenLDAP a policy must name groups by DN or SID: a bare name is refused at import (it would match no
directory group and grant nothing), audited, and the running policy stays."""

import json

import pytest
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.policies.errors import InvalidPolicy
from gateway.policies.service import current_version, import_policy

BY_NAME = "version: 1\ngroups:\n  SOHO-Agents: {roles: [agent]}\n"
BY_DN_AND_SID = (
    'version: 1\ngroups:\n  "CN=SOHO-Agents,OU=Groups,DC=corp,DC=example": {roles: [agent]}\n'
    "  S-1-5-21-1004336348-1177238915-682003330-1105: {roles: [supervisor]}\n"
)


@pytest.mark.parametrize("kind", ["active_directory", "openldap"])
def test_a_directory_policy_naming_a_group_by_name_is_refused_and_audited(db: Session, kind: str) -> None:
    with pytest.raises(InvalidPolicy) as refused:
        import_policy(db, BY_NAME, actor="admin1", source="", now=utcnow(), directory_kind=kind)
    assert "SOHO-Agents are named by name" in refused.value.message and "DN" in refused.value.message
    assert current_version(db) is None
    row = db.exec(select(AuditEvent).where(AuditEvent.action == "policy.import")).one()
    assert row.outcome == "refused" and "SOHO-Agents" in json.loads(row.detail)["problems"]


def test_dns_and_sids_are_accepted_and_the_builtin_directory_keeps_names(db: Session) -> None:
    assert import_policy(db, BY_DN_AND_SID, actor="admin1", source="", now=utcnow(), directory_kind="openldap")
    assert import_policy(db, BY_NAME, actor="admin1", source="", now=utcnow(), directory_kind="builtin")
    assert current_version(db).version == 2  # type: ignore[union-attr]


def test_team_scope_naming_a_group_by_name_is_refused_too(db: Session) -> None:
    scoped = BY_DN_AND_SID + 'team_scope:\n  teams:\n    "CN=Team-A,DC=corp,DC=example": [Sup-A]\n'
    with pytest.raises(InvalidPolicy) as refused:
        import_policy(db, scoped, actor="admin1", source="", now=utcnow(), directory_kind="active_directory")
    assert "Sup-A are named by name" in refused.value.message
    fixed = scoped.replace("[Sup-A]", '["CN=Sup-A,DC=corp,DC=example"]')
    assert import_policy(db, fixed, actor="admin1", source="", now=utcnow(), directory_kind="active_directory")
