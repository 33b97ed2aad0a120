"""The two ways a directory server pushes changed entries, as searches that never end.

Active Directory (and Samba AD DC): a search carrying LDAP_SERVER_NOTIFICATION_OID (1.2.840.113556.1.4.528, no
value). The DC answers nothing until an entry in scope changes, then sends that entry. Its rules (MS-ADTS
3.1.1.3.4.1.9 and "Change Notifications in Active Directory Domain Services"): filter ``(objectClass=*)`` only;
scope base or one-level (subtree only on a naming context's root, discouraged); at most five such searches on one
connection. We watch one level under each container that holds a live session's account or one of its groups.

OpenLDAP: the content synchronisation search of RFC 4533 in refreshAndPersist mode, served by the ``syncprov``
overlay. Without a cookie the server first sends every entry in scope (sync state ``add``), then a Sync Info
message, then each change as it happens (state ``modify`` or ``delete``; a new entry is ``add``). Entries in state
``add`` cannot hold a live session or have lost a member, so only ``modify`` and ``delete`` count as changes.

A changed entry is named twice, by its DN and by its stable id (AD ``objectGUID``, OpenLDAP ``entryUUID``, as the
directories give ``person_id``): a rename changes the DN, not the id. Samba AD DC sends no notification for a
deleted account at all (measured: none within 8 s, whether watching its container or Deleted Objects, with the
show-deleted control or without), so a deletion reaches live sessions through the poll.
"""

import uuid
from typing import Any, Protocol

from ldap3 import LEVEL, SUBTREE
from pyasn1.codec.ber import decoder

NOTIFICATION_OID = "1.2.840.113556.1.4.528"
SYNC_REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"
SYNC_STATE_OID = "1.3.6.1.4.1.4203.1.9.1.2"
# syncRequestValue ::= SEQUENCE { mode ENUMERATED { refreshAndPersist (3) } } — no cookie, reloadHint FALSE.
_REFRESH_AND_PERSIST = bytes.fromhex("30 03 0a 01 03")
_SYNC_MODIFY, _SYNC_DELETE = 2, 3  # syncStateValue.state (RFC 4533 §2.3)

Search = tuple[str, str]
"""A watched search: its base DN and scope (ldap3's ``BASE``, ``LEVEL`` or ``SUBTREE``)."""
Control = tuple[str, bool, bytes | None]


class ChangeFeed(Protocol):
    """What a mechanism decides: the searches, their controls and attributes, and which answers are changes."""

    per_connection: int
    """Watched searches one connection may carry."""

    def searches(self, containers: frozenset[str]) -> list[Search]: ...
    def controls(self) -> list[Control]: ...
    def attributes(self) -> list[str]: ...
    def changed(self, response: dict[str, Any]) -> set[str]: ...


class AdChangeNotification:
    """Active Directory's change notification: one-level searches under the containers of interest."""

    per_connection = 5  # AD registers at most five notification searches on one connection

    def searches(self, containers: frozenset[str]) -> list[Search]:
        return [(container, LEVEL) for container in sorted(containers)]

    def controls(self) -> list[Control]:
        return [(NOTIFICATION_OID, True, None)]

    def attributes(self) -> list[str]:
        return ["objectGUID"]

    def changed(self, response: dict[str, Any]) -> set[str]:
        """Every entry AD sends on a notification search is one that changed: its DN and objectGUID."""
        if response.get("type") != "searchResEntry":
            return set()
        guids = (response.get("raw_attributes") or {}).get("objectGUID") or []
        return {str(response["dn"]), *(str(uuid.UUID(bytes_le=bytes(g))) for g in guids[:1])}


class SyncReplPersist:
    """OpenLDAP's refreshAndPersist over the whole base: one search covers every account and group."""

    per_connection = 1

    def __init__(self, base_dn: str) -> None:
        self._base_dn = base_dn

    def searches(self, containers: frozenset[str]) -> list[Search]:
        return [(self._base_dn, SUBTREE)]

    def controls(self) -> list[Control]:
        return [(SYNC_REQUEST_OID, True, _REFRESH_AND_PERSIST)]

    def attributes(self) -> list[str]:
        return ["1.1"]  # no attributes: the sync state control carries the entryUUID

    def changed(self, response: dict[str, Any]) -> set[str]:
        """DN and entryUUID of an entry modified or deleted after the refresh; nothing for the refresh's entries."""
        if response.get("type") != "searchResEntry":
            return set()
        control = (response.get("controls") or {}).get(SYNC_STATE_OID)
        if control is None:
            return set()
        # syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID OCTET STRING (16 bytes), cookie OPTIONAL }
        value, _rest = decoder.decode(bytes(control["value"]))
        if int(value[0]) not in (_SYNC_MODIFY, _SYNC_DELETE):
            return set()
        return {str(response["dn"]), str(uuid.UUID(bytes=bytes(value[1])))}
