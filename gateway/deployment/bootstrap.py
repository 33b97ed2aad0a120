"""First run against a company directory: map the company's own groups onto the gateway's roles.

The default policy names groups the company does not have (``SOHO-Agents`` …), so without this every directory
user — the admins who could fix it included — is refused for having no role. The operator names one group per
role as the company calls it (or gives its DN); the directory is asked for each group's DN, and the default policy
is stored as the first policy version with those DNs in place of its own group names (a policy names groups by
DN: a name can be reused in another OU, a DN cannot). Nothing is stored unless every group is found exactly once.
"""

from collections.abc import Mapping
from datetime import datetime

import yaml
from ldap3 import BASE, SUBTREE
from ldap3.utils.conv import escape_filter_chars
from sqlmodel import Session

from gateway.deployment.errors import GroupNotFound
from gateway.directory.errors import DirectoryError
from gateway.directory.servers import ServerList
from gateway.directory.settings import DirectorySettings
from gateway.errors import Conflict
from gateway.policies.models import PolicyVersion
from gateway.policies.service import current_version, import_policy
from policy.document import DEFAULT_POLICY_FILE

GROUP_FILTERS = {
    "active_directory": "(&(objectClass=group)(|(cn={name})(sAMAccountName={name})))",
    "openldap": "(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(cn={name}))",
}


def _looks_like_dn(name: str) -> bool:
    return "=" in name and "," in name


def group_dn(settings: DirectorySettings, name: str) -> str:
    """The DN of the group the operator calls ``name`` (a cn, a sAMAccountName, or a DN to confirm)."""
    if settings.kind == "builtin":
        return name  # the built-in directory's groups are their own DNs
    connection = ServerList(settings).open(settings.bind_dn, settings.bind_password.get_secret_value())
    try:
        if not connection.bind():
            raise DirectoryError(f"service account bind refused ({connection.result.get('message', '')})")
        if _looks_like_dn(name):
            connection.search(name, "(objectClass=*)", BASE, attributes=["cn"])
        else:
            query = GROUP_FILTERS[settings.kind].format(name=escape_filter_chars(name))
            connection.search(settings.base_dn, query, SUBTREE, attributes=["cn"])
        found = [entry.entry_dn for entry in connection.entries]
    finally:
        connection.unbind()
    if not found:
        raise GroupNotFound(f"no group {name!r} under {settings.base_dn}: check the name (cn or sAMAccountName)")
    if len(found) > 1:
        raise GroupNotFound(f"{name!r} names {len(found)} groups ({'; '.join(found)}): give the DN of the one you mean")
    return str(found[0])


def mapped_default_policy(role_groups: Mapping[str, str]) -> str:
    """The default policy with each group that grants a mapped role renamed to the company's group DN."""
    document = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    renamed = {}
    for name, group in document["groups"].items():
        roles = group.get("roles", [])
        mapped = [role_groups[role] for role in roles if role in role_groups]
        renamed[mapped[0] if mapped else name] = group
    document["groups"] = renamed
    header = (
        "# Made by `sohogw bootstrap` from the default policy: the company's groups, by DN, in its groups' place.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def bootstrap_policy(
    db: Session, settings: DirectorySettings, role_names: Mapping[str, str], *, actor: str, now: datetime
) -> tuple[PolicyVersion, dict[str, str]]:
    """Resolve every named group, then store the mapped default policy as version 1; refused once a policy exists."""
    existing = current_version(db)
    if existing is not None:
        raise Conflict(
            f"policy version {existing.version} is already in force: bootstrap is for the first run; "
            "change the policy with `sohogw policy export` / `sohogw policy import`"
        )
    role_groups = {role: group_dn(settings, name) for role, name in role_names.items()}
    version = import_policy(
        db, mapped_default_policy(role_groups), actor=actor, source="local", now=now, comment="sohogw bootstrap"
    )
    return version, role_groups
