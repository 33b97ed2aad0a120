"""OpenLDAP (any RFC 4511 server with inetOrgPerson users and groupOfNames groups) through ldap3.

A login first finds the entry as the service account: by `user_attribute` (matched as the schema says, uid
case-insensitively), by the configured `upn_attribute` for a name with ``@``, or by reading the `user_dn_template`
DN. The person is the entry's ``entryUUID`` (RFC 4530), never the typed text. Then it binds as that DN and reads
the entry on that connection. Nested groups are followed upward a bounded number of levels: the first level from the
memberof overlay's `memberOf` attribute or from a `(member=<dn>)` search, the next ones by `(member=<group>)`.
Without the ppolicy overlay OpenLDAP has no account states beyond "wrong password" and "no such account".
"""

from collections.abc import Callable
from typing import Any

from ldap3 import BASE, Connection
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from gateway.directory import errors
from gateway.directory.change_feeds import SyncReplPersist
from gateway.directory.entries import first, one_entry, search
from gateway.directory.interface import Account, DirectoryUser, Group
from gateway.directory.logins import check_login, check_password, dn_from_template, equality_filter, is_dn
from gateway.directory.pool import PooledDirectory, ServiceConnections
from gateway.directory.servers import ServerList
from gateway.directory.settings import DirectorySettings
from gateway.directory.states import AccountState
from gateway.directory.watch import Changed, DirectoryWatch, StatusReport, watch_for

ACCOUNT = ["entryUUID", "uid", "cn"]
PERSON = [*ACCOUNT, "displayName", "mail", "telephoneNumber", "mobile", "memberOf"]


class OpenLdapDirectory(PooledDirectory):
    """The `Directory` of an OpenLDAP tree."""

    def __init__(self, settings: DirectorySettings) -> None:
        self._settings = settings
        self._servers = ServerList(settings)
        self._pool = ServiceConnections(
            self._servers,
            settings.bind_dn,
            settings.bind_password.get_secret_value(),
            settings.pool_size,
            wait_seconds=settings.receive_timeout,
        )

    def _entry(self, conn: Connection, login: str, attributes: list[str]) -> dict[str, Any]:
        """The one entry a login names: by UPN attribute, by DN template, or by the login attribute."""
        settings = self._settings
        if "@" in login and settings.upn_attribute:
            by_upn = equality_filter(settings.upn_attribute, login, "person")
            return one_entry(conn, settings.base_dn, by_upn, attributes)
        if settings.user_dn_template:
            user_dn = dn_from_template(settings.user_dn_template, login)
            return one_entry(conn, user_dn, "(objectClass=person)", attributes, BASE)
        return one_entry(conn, settings.base_dn, equality_filter(settings.user_attribute, login, "person"), attributes)

    def find_account(self, login: str) -> Account:
        login = check_login(login)
        upn_attribute = self._settings.upn_attribute
        entry = self._pool.run(lambda conn: self._entry(conn, login, self._with_upn(ACCOUNT)))
        return Account(
            person_id=_entry_uuid(entry),
            dn=entry["dn"],
            name=first(entry, self._settings.user_attribute, "uid") or login,
            upn=first(entry, upn_attribute) if upn_attribute else None,
            sam_account_name=first(entry, "uid"),
        )

    def verify(self, account: Account, password: str) -> DirectoryUser:
        check_password(password)
        with self._servers.bound_as(account.dn, password, _wrong_password) as conn:
            entry = one_entry(conn, account.dn, "(objectClass=person)", self._with_upn(PERSON), BASE)
            return self._person(conn, entry, account.name, AccountState.ACTIVE)

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        check_password(password)
        return self.verify(self.find_account(login), password)

    def _with_upn(self, attributes: list[str]) -> list[str]:
        """The attributes and the configured UPN attribute, if any."""
        upn = self._settings.upn_attribute
        return [*attributes, upn] if upn else attributes

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        def read(conn: Connection) -> DirectoryUser:
            attributes = self._with_upn(PERSON)
            if is_dn(login_or_dn):
                entry = one_entry(conn, login_or_dn, "(objectClass=person)", attributes, BASE)
            else:
                entry = self._entry(conn, check_login(login_or_dn), attributes)
            name = first(entry, self._settings.user_attribute, "uid") or login_or_dn
            return self._person(conn, entry, name, AccountState.ACTIVE)

        return self._pool.run(read)

    def lookup_person(self, person_id: str) -> DirectoryUser:
        by_uuid = f"(&(objectClass=person)(entryUUID={escape_filter_chars(person_id)}))"

        def read(conn: Connection) -> DirectoryUser:
            entry = one_entry(conn, self._settings.base_dn, by_uuid, self._with_upn(PERSON))
            name = first(entry, self._settings.user_attribute, "uid") or person_id
            return self._person(conn, entry, name, AccountState.ACTIVE)

        return self._pool.run(read)

    def watch_changes(
        self, containers: Callable[[], frozenset[str]], on_change: Changed, on_status: StatusReport
    ) -> DirectoryWatch | None:
        """syncrepl refreshAndPersist over the whole base (needs the syncprov overlay); ``containers`` unused."""
        return watch_for(self._settings, SyncReplPersist(self._settings.base_dn), containers, on_change, on_status)

    def _person(self, conn: Connection, entry: dict[str, Any], login: str, state: AccountState) -> DirectoryUser:
        groups = self._groups(conn, entry)
        return DirectoryUser(
            dn=entry["dn"],
            login=login,
            person_id=_entry_uuid(entry),
            upn=first(entry, self._settings.upn_attribute) if self._settings.upn_attribute else None,
            sam_account_name=first(entry, "uid"),
            display_name=first(entry, "displayName", "cn"),
            mail=first(entry, "mail"),
            phone=first(entry, "telephoneNumber", "mobile"),
            groups=groups,
            state=state,
        )

    def _groups(self, conn: Connection, entry: dict[str, Any]) -> tuple[Group, ...]:
        """Direct groups, then their parents, up to `max_group_depth` levels in all."""
        if self._settings.group_strategy == "member_of":
            member_of = [bytes(v).decode() for v in entry["raw_attributes"].get("memberOf", [])]
            level = {dn: Group(dn, parse_dn(dn)[0][1]) for dn in member_of}
        else:
            level = self._parents(conn, [entry["dn"]])
        found = dict(level)
        for _ in range(self._settings.max_group_depth - 1):
            level = {dn: g for dn, g in self._parents(conn, list(level)).items() if dn not in found}
            if not level:
                break
            found.update(level)
        return tuple(sorted(found.values()))

    def _parents(self, conn: Connection, member_dns: list[str]) -> dict[str, Group]:
        if not member_dns:
            return {}
        members = "".join(f"(member={escape_filter_chars(dn)})" for dn in member_dns)
        found = search(conn, self._settings.base_dn, f"(&(objectClass=groupOfNames)(|{members}))", ["cn"])
        return {e["dn"]: Group(e["dn"], first(e, "cn") or e["dn"]) for e in found}


def _entry_uuid(entry: dict[str, Any]) -> str:
    """The entry's entryUUID (RFC 4530: OpenLDAP keeps it for the entry's life, through renames)."""
    value = first(entry, "entryUUID")
    if not value:
        raise errors.DirectoryMisconfigured(f"{entry['dn']!r} has no readable entryUUID")
    return value.lower()


def _wrong_password(_message: str) -> errors.LoginRefused:
    """OpenLDAP's bind refusal says nothing of the account's state (the poll reads that): a wrong password."""
    return errors.WrongPassword("directory refused the password")
