"""OpenLDAP (any RFC 4511 server with inetOrgPerson users and groupOfNames groups) through ldap3.

A login binds as the person's DN (from `user_dn_template`, or found by the service account) and reads the entry
on that connection. Nested groups are followed upward a bounded number of levels: the first level from the
memberof overlay's `memberOf` attribute or from a `(member=<dn>)` search, the next ones by `(member=<group>)`.
Without the ppolicy overlay OpenLDAP has no account states beyond "wrong password" and "no such account".
"""

from typing import Any

from ldap3 import BASE, Connection
from ldap3.core.exceptions import LDAPCommunicationError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from gateway.directory import errors
from gateway.directory.entries import first, one_entry, search
from gateway.directory.interface import DirectoryUser, Group
from gateway.directory.logins import check_credentials, dn_from_template, equality_filter, is_dn
from gateway.directory.pool import PooledDirectory, ServiceConnections
from gateway.directory.servers import ServerList
from gateway.directory.settings import DirectorySettings
from gateway.directory.states import AccountState

PERSON = ["uid", "cn", "displayName", "mail", "telephoneNumber", "mobile", "memberOf"]
INVALID_CREDENTIALS = 49


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

    def _find_dn(self, conn: Connection, login: str) -> str:
        user_filter = equality_filter(self._settings.user_attribute, login, "person")
        return str(one_entry(conn, self._settings.base_dn, user_filter, ["cn"])["dn"])

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        login = check_credentials(login, password)
        if is_dn(login):
            raise errors.MalformedLogin("sign in with your user name, not a distinguished name")
        template = self._settings.user_dn_template
        user_dn = dn_from_template(template, login) if template else self._pool.run(lambda c: self._find_dn(c, login))
        conn = self._servers.open(user_dn, password)
        try:
            if not conn.bind():
                if conn.result["result"] != INVALID_CREDENTIALS:
                    raise errors.DirectoryMisconfigured(f"bind refused: {conn.result['description']}")
                if template:  # OpenLDAP says 49 for a DN that does not exist too: ask the service account
                    self._pool.run(lambda c: one_entry(c, user_dn, "(objectClass=person)", ["cn"], BASE))
                raise errors.WrongPassword("directory refused the password")
            entry = one_entry(conn, user_dn, "(objectClass=person)", PERSON, BASE)
            return self._person(conn, entry, login, AccountState.ACTIVE)
        except LDAPCommunicationError as exc:
            self._servers.report_failure(conn)
            raise errors.DirectoryUnavailable(f"directory connection lost during login: {exc}") from None
        finally:
            conn.unbind()

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        def read(conn: Connection) -> DirectoryUser:
            if is_dn(login_or_dn):
                entry = one_entry(conn, login_or_dn, "(objectClass=person)", PERSON, BASE)
            else:
                user_filter = equality_filter(self._settings.user_attribute, login_or_dn.strip(), "person")
                entry = one_entry(conn, self._settings.base_dn, user_filter, PERSON)
            return self._person(conn, entry, login_or_dn, AccountState.ACTIVE)

        return self._pool.run(read)

    def _person(self, conn: Connection, entry: dict[str, Any], login: str, state: AccountState) -> DirectoryUser:
        groups = self._groups(conn, entry)
        return DirectoryUser(
            dn=entry["dn"],
            login=login,
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
