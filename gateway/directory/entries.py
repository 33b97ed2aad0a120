"""Reading entries and changing group membership: the LDAP steps AD and OpenLDAP share."""

from collections.abc import Sequence
from typing import Any, Literal

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, SUBTREE, Connection

from gateway.directory import errors

SearchScope = Literal["BASE", "LEVEL", "SUBTREE"]
"""ldap3's scopes, as its ``BASE``, ``LEVEL`` and ``SUBTREE`` spell them."""

# Result codes that mean "already as asked" (RFC 4511 appendix A; Samba answers 53 for a non-member delete).
_ALREADY = {"add": {20, 68}, "remove": {16, 53}}


def search(
    conn: Connection, base: str, ldap_filter: str, attributes: Sequence[str], scope: SearchScope = SUBTREE
) -> list[dict[str, Any]]:
    """Entries (not referrals) matching the filter; a missing base gives an empty list."""
    conn.search(base, ldap_filter, scope, attributes=list(attributes), size_limit=0 if scope == BASE else 1000)
    if conn.result["result"] not in (0, 4, 32):  # success, sizeLimitExceeded, noSuchObject
        raise errors.DirectoryError(f"directory search failed: {conn.result['description']}")
    return [r for r in conn.response or [] if r.get("type") == "searchResEntry"]


def one_entry(
    conn: Connection, base: str, ldap_filter: str, attributes: Sequence[str], scope: SearchScope = SUBTREE
) -> dict[str, Any]:
    """Exactly one matching entry; none or several is AccountNotFound (fail closed on ambiguity)."""
    found = search(conn, base, ldap_filter, attributes, scope)
    if len(found) != 1:
        raise errors.AccountNotFound(f"{len(found)} directory entries match the login")
    return found[0]


def first(entry: dict[str, Any], *names: str) -> str | None:
    """First value of the first present attribute, as text."""
    for name in names:
        values = entry["raw_attributes"].get(name) or []
        if values:
            return bytes(values[0]).decode("utf-8", errors="replace")
    return None


def change_membership(conn: Connection, user_dn: str, group_dn: str, add: bool) -> None:
    """Add or remove one direct `member` value; doing what is already true succeeds."""
    verb = "add" if add else "remove"
    conn.modify(group_dn, {"member": [(MODIFY_ADD if add else MODIFY_DELETE, [user_dn])]})
    code = conn.result["result"]
    if code == 0 or code in _ALREADY[verb]:
        return
    if code == 32:
        raise errors.DirectoryError(f"group {group_dn!r} does not exist")
    raise errors.DirectoryError(f"could not {verb} {user_dn!r} in {group_dn!r}: {conn.result['description']}")
