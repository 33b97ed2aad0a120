"""Active Directory (and Samba AD DC) through ldap3.

A login first finds the entry as the service account, for any spelling AD itself accepts: ``DOMAIN\\name``, a bare
sAMAccountName, the userPrincipalName, or the implicit UPN ``sAMAccountName@<DNS domain>`` (AD matches all of them
case-insensitively). The person is the entry's ``objectGUID``, never the typed text. Then three round trips on the
person's own connection: bind to the entry's DN (AD answers bad states with a sub-code), read the entry, read
`tokenGroups` — the SIDs of every group the person is in, nesting resolved by the DC (cheaper than an IN_CHAIN
search, FIELD_NOTES). SIDs are turned into group names through a small cache.
"""

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ldap3 import BASE, Connection
from ldap3.protocol.formatters.formatters import format_sid
from ldap3.utils.conv import escape_bytes, escape_filter_chars
from ldap3.utils.dn import parse_dn

from gateway.directory import errors
from gateway.directory.change_feeds import AdChangeNotification
from gateway.directory.entries import first, one_entry, search
from gateway.directory.interface import Account, DirectoryUser, Group
from gateway.directory.logins import check_login, check_password, equality_filter, is_dn
from gateway.directory.pool import PooledDirectory, ServiceConnections
from gateway.directory.servers import ServerList
from gateway.directory.settings import DirectorySettings
from gateway.directory.states import AccountState, refusal_from_bind_message, state_from_attributes
from gateway.directory.watch import Changed, DirectoryWatch, StatusReport, watch_for

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN: transitive member
ACCOUNT = ["objectGUID", "userPrincipalName", "sAMAccountName"]
PERSON = [*ACCOUNT, "displayName", "mail", "telephoneNumber", "mobile"]
STATE = ["userAccountControl", "msDS-User-Account-Control-Computed", "accountExpires", "pwdLastSet", "logonHours"]


class ActiveDirectory(PooledDirectory):
    """The `Directory` of an Active Directory domain."""

    def __init__(self, settings: DirectorySettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._now = now
        self._servers = ServerList(settings)
        self._pool = ServiceConnections(
            self._servers,
            settings.bind_dn,
            settings.bind_password.get_secret_value(),
            settings.pool_size,
            wait_seconds=settings.receive_timeout,
        )
        self._sid_groups: dict[bytes, tuple[float, Group]] = {}
        self._sid_lock = threading.Lock()

    def dns_domain(self) -> str:
        """The domain's DNS name, the suffix of implicit UPNs: configured, or read off the base DN's DC parts."""
        if self._settings.dns_domain:
            return self._settings.dns_domain
        return ".".join(value for attr, value, _ in parse_dn(self._settings.base_dn) if attr.casefold() == "dc")

    def _implicit_upn(self, sam: str | None) -> str | None:
        return f"{sam}@{self.dns_domain()}" if sam else None

    def _filters(self, login: str) -> list[str]:
        """Filters tried in order for a typed login, as AD resolves names (explicit UPN before implicit UPN)."""
        netbios = self._settings.netbios_domain
        if "\\" in login:
            domain, _, name = login.partition("\\")
            if not name or not netbios or domain.casefold() != netbios.casefold():
                raise errors.MalformedLogin(f"domain {domain!r} is not this directory's")
            return [equality_filter("sAMAccountName", name, "user")]
        if "@" in login:
            by_upn = [equality_filter("userPrincipalName", login, "user")]
            name, _, domain = login.rpartition("@")
            if name and domain.casefold() == self.dns_domain().casefold():
                by_upn.append(equality_filter("sAMAccountName", name, "user"))  # the implicit UPN
            return by_upn
        return [equality_filter("sAMAccountName", login, "user")]

    def _entry(self, conn: Connection, login: str, attributes: list[str]) -> dict[str, Any]:
        """The one entry a login names; several matches for one filter fail closed (AccountNotFound)."""
        for user_filter in self._filters(login):
            found = search(conn, self._settings.base_dn, user_filter, attributes)
            if len(found) > 1:
                raise errors.AccountNotFound(f"{len(found)} directory entries match the login")
            if found:
                return found[0]
        raise errors.AccountNotFound("no directory entry matches the login")

    def find_account(self, login: str) -> Account:
        login = check_login(login)
        entry = self._pool.run(lambda conn: self._entry(conn, login, ACCOUNT))
        sam = first(entry, "sAMAccountName")
        return Account(
            person_id=_guid(entry),
            dn=entry["dn"],
            name=sam or login,
            upn=first(entry, "userPrincipalName"),
            implicit_upn=self._implicit_upn(sam),
            sam_account_name=sam,
        )

    def verify(self, account: Account, password: str) -> DirectoryUser:
        check_password(password)
        with self._servers.bound_as(account.dn, password, refusal_from_bind_message) as conn:
            entry = one_entry(conn, account.dn, "(objectClass=user)", PERSON, BASE)
            return self._person(entry, account.name, self._groups(conn, entry["dn"]), AccountState.ACTIVE)

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        check_password(password)
        return self.verify(self.find_account(login), password)

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        def read(conn: Connection) -> DirectoryUser:
            if is_dn(login_or_dn):
                entry = one_entry(conn, login_or_dn, "(objectClass=user)", PERSON + STATE, BASE)
            else:
                entry = self._entry(conn, check_login(login_or_dn), PERSON + STATE)
            return self._read_person(conn, entry, login_or_dn)

        return self._pool.run(read)

    def lookup_person(self, person_id: str) -> DirectoryUser:
        try:
            guid = uuid.UUID(person_id)
        except ValueError:
            raise errors.AccountNotFound("not an objectGUID, so no Active Directory entry has it") from None
        by_guid = f"(&(objectClass=user)(objectGUID={escape_bytes(guid.bytes_le)}))"

        def read(conn: Connection) -> DirectoryUser:
            return self._read_person(conn, one_entry(conn, self._settings.base_dn, by_guid, PERSON + STATE), person_id)

        return self._pool.run(read)

    def _read_person(self, conn: Connection, entry: dict[str, Any], asked_as: str) -> DirectoryUser:
        """The person of an entry read with ``PERSON + STATE``: state, groups, the account name (else ``asked_as``)."""
        state = state_from_attributes(entry["raw_attributes"], self._now())
        name = first(entry, "sAMAccountName") or asked_as
        return self._person(entry, name, self._groups(conn, entry["dn"]), state)

    def watch_changes(
        self, containers: Callable[[], frozenset[str]], on_change: Changed, on_status: StatusReport
    ) -> DirectoryWatch | None:
        """AD change notification on one level under each of ``containers()`` (``change_feeds.py``)."""
        return watch_for(self._settings, AdChangeNotification(), containers, on_change, on_status)

    def _person(
        self, entry: dict[str, Any], login: str, groups: tuple[Group, ...], state: AccountState
    ) -> DirectoryUser:
        sam = first(entry, "sAMAccountName")
        return DirectoryUser(
            dn=entry["dn"],
            login=login,
            person_id=_guid(entry),
            upn=first(entry, "userPrincipalName"),
            implicit_upn=self._implicit_upn(sam),
            sam_account_name=sam,
            display_name=first(entry, "displayName"),
            mail=first(entry, "mail"),
            phone=first(entry, "telephoneNumber", "mobile"),
            groups=groups,
            state=state,
        )

    def _groups(self, conn: Connection, user_dn: str) -> tuple[Group, ...]:
        """Every group of the user, nested ones included, by the configured strategy."""
        if self._settings.group_strategy == "in_chain":
            in_chain = f"(&(objectClass=group)(member:{IN_CHAIN}:={escape_filter_chars(user_dn)}))"
            found = search(conn, self._settings.base_dn, in_chain, ["cn", "objectSid"])
            return tuple(sorted(Group(e["dn"], first(e, "cn") or e["dn"], _sid(e)) for e in found))
        token = search(conn, user_dn, "(objectClass=*)", ["tokenGroups"], BASE)
        sids = token[0]["raw_attributes"].get("tokenGroups", []) if token else []
        return tuple(sorted(self._groups_by_sid(conn, [bytes(s) for s in sids])))

    def _groups_by_sid(self, conn: Connection, sids: list[bytes]) -> list[Group]:
        """Groups for SIDs, from the cache or one OR-search for the unknown ones; unresolvable SIDs are skipped."""
        now = time.monotonic()
        ttl = self._settings.group_cache_seconds
        with self._sid_lock:
            known = {s: g for s, (t, g) in self._sid_groups.items() if now - t < ttl}
        missing = [s for s in sids if s not in known]
        if missing:
            by_sid = "(|" + "".join(f"(objectSid={escape_bytes(s)})" for s in missing) + ")"
            for entry in search(conn, self._settings.base_dn, by_sid, ["cn", "objectSid"]):
                sid = bytes(entry["raw_attributes"]["objectSid"][0])
                known[sid] = Group(entry["dn"], first(entry, "cn") or entry["dn"], format_sid(sid))
                with self._sid_lock:
                    self._sid_groups[sid] = (now, known[sid])
        return [known[s] for s in sids if s in known]


def _sid(entry: dict[str, Any]) -> str | None:
    values = entry["raw_attributes"].get("objectSid") or []
    return format_sid(bytes(values[0])) if values else None


def _guid(entry: dict[str, Any]) -> str:
    """The entry's objectGUID in its usual text form; AD stores the GUID's first three fields little-endian."""
    values = entry["raw_attributes"].get("objectGUID") or []
    if not values:
        raise errors.DirectoryMisconfigured(f"{entry['dn']!r} has no readable objectGUID")
    return str(uuid.UUID(bytes_le=bytes(values[0])))
