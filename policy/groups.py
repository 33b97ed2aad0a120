"""How a policy names a directory group: by its DN or SID, never by a name anyone could copy.

Anyone who may create a group somewhere under the base DN can call it ``SOHO-SecurityAdmins``; its DN still says
where it is. So a policy group key is compared with the person's group *identifiers*: a DN matches the same DN
(RDN by RDN, case and spaces around ``=`` and ``,`` ignored), an AD SID matches the same SID, and a plain name (no
``=``) matches only a group whose identifier is that plain name — which only the built-in directory's groups have
(its file is written on the host). A key holding a CN never matches an AD or OpenLDAP group.
"""

import re
from collections.abc import Iterable

_SID = re.compile(r"^S-1-\d+(-\d+)+$", re.IGNORECASE)


def names_without_dn(keys: Iterable[str]) -> list[str]:
    """The keys that are neither a DN nor a SID: fine for the built-in directory, matching nothing elsewhere."""
    return [key for key in keys if "=" not in key and not _SID.match(key.strip())]


def _rdns(dn: str) -> list[str]:
    """The DN's RDNs, split at commas that are not escaped (RFC 4514 §2.4: ``\\,`` is part of a value)."""
    parts, current, escaped = [], "", False
    for ch in dn:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            current, escaped = current + ch, True
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def group_key(identifier: str) -> str:
    """The form in which a policy key and a group identifier are compared."""
    text = identifier.strip()
    if "=" not in text:
        return text.casefold()  # a SID (S-1-5-21-…) or a built-in directory group's name
    rdns = []
    for rdn in _rdns(text):
        attribute, _, value = rdn.partition("=")
        rdns.append(f"{attribute.strip().casefold()}={value.strip().casefold()}")
    return ",".join(rdns)
