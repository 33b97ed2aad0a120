"""Gateway roles from directory groups, as configured in `role_groups`."""

from collections.abc import Iterable, Mapping, Sequence

from gateway.directory.interface import Group
from gateway.directory.logins import is_dn, normalized_dn
from gateway.directory.settings import Role


def roles_for(groups: Iterable[Group], role_groups: Mapping[Role, Sequence[str]]) -> frozenset[Role]:
    """Roles whose configured groups include one of the user's (already nested-resolved) groups.

    A configured entry that is a DN matches the group's DN; any other entry matches its name (cn), both
    case-insensitively as AD and OpenLDAP compare them.
    """
    dns = {normalized_dn(g.dn) for g in groups if is_dn(g.dn)}
    names = {g.name.casefold() for g in groups}
    roles: set[Role] = set()
    for role, entries in role_groups.items():
        for entry in entries:
            if (normalized_dn(entry) in dns) if is_dn(entry) else (entry.casefold() in names):
                roles.add(role)
                break
    return frozenset(roles)
