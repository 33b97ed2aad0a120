"""Active Directory (and Samba AD DC) through ldap3.

A login is three round trips on the person's own connection: bind (AD answers bad states with a sub-code), read
the person's entry, read `tokenGroups` — the SIDs of every group the person is in, nesting resolved by the DC
(cheaper than an IN_CHAIN search, FIELD_NOTES). SIDs are turned into group names through a small cache.
"""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ldap3 import BASE, Connection
from ldap3.core.exceptions import LDAPCommunicationError
from ldap3.utils.conv import escape_bytes, escape_filter_chars

from gateway.directory import errors
from gateway.directory.entries import first, one_entry, search
from gateway.directory.interface import DirectoryUser, Group
from gateway.directory.logins import check_credentials, equality_filter, is_dn
from gateway.directory.pool import PooledDirectory, ServiceConnections
from gateway.directory.servers import ServerList
from gateway.directory.settings import DirectorySettings
from gateway.directory.states import AccountState, refusal_from_bind_message, state_from_attributes

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN: transitive member
PERSON = ["userPrincipalName", "sAMAccountName", "displayName", "mail", "telephoneNumber", "mobile"]
STATE = ["userAccountControl", "msDS-User-Account-Control-Computed", "accountExpires", "pwdLastSet", "logonHours"]
INVALID_CREDENTIALS = 49


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

    def _bind_name_and_filter(self, login: str) -> tuple[str, str]:
        """How a typed login binds, and the filter that finds its entry: UPN, DOMAIN\\name or a bare name."""
        netbios = self._settings.netbios_domain
        if "@" in login:
            return login, equality_filter("userPrincipalName", login, "user")
        if "\\" in login:
            domain, _, name = login.partition("\\")
            if not name or not netbios or domain.casefold() != netbios.casefold():
                raise errors.MalformedLogin(f"domain {domain!r} is not this directory's")
            return f"{netbios}\\{name}", equality_filter("sAMAccountName", name, "user")
        if netbios:
            return f"{netbios}\\{login}", equality_filter("sAMAccountName", login, "user")
        if self._settings.upn_suffix:
            upn = f"{login}@{self._settings.upn_suffix}"
            return upn, equality_filter("userPrincipalName", upn, "user")
        raise errors.DirectoryMisconfigured("set netbios_domain or upn_suffix to accept bare user names")

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        login = check_credentials(login, password)
        if is_dn(login):
            raise errors.MalformedLogin("sign in with your user name, not a distinguished name")
        bind_name, user_filter = self._bind_name_and_filter(login)
        conn = self._servers.open(bind_name, password)
        try:
            if not conn.bind():
                if conn.result["result"] == INVALID_CREDENTIALS:
                    raise refusal_from_bind_message(conn.result.get("message", ""))
                raise errors.DirectoryMisconfigured(f"bind refused: {conn.result['description']}")
            entry = one_entry(conn, self._settings.base_dn, user_filter, PERSON)
            return self._person(entry, login, self._groups(conn, entry["dn"]), AccountState.ACTIVE)
        except LDAPCommunicationError as exc:
            self._servers.report_failure(conn)
            raise errors.DirectoryUnavailable(f"directory connection lost during login: {exc}") from None
        finally:
            conn.unbind()

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        def read(conn: Connection) -> DirectoryUser:
            if is_dn(login_or_dn):
                entry = one_entry(conn, login_or_dn, "(objectClass=user)", PERSON + STATE, BASE)
            else:
                _, user_filter = self._bind_name_and_filter(login_or_dn.strip())
                entry = one_entry(conn, self._settings.base_dn, user_filter, PERSON + STATE)
            state = state_from_attributes(entry["raw_attributes"], self._now())
            return self._person(entry, login_or_dn, self._groups(conn, entry["dn"]), state)

        return self._pool.run(read)

    def _person(
        self, entry: dict[str, Any], login: str, groups: tuple[Group, ...], state: AccountState
    ) -> DirectoryUser:
        return DirectoryUser(
            dn=entry["dn"],
            login=login,
            upn=first(entry, "userPrincipalName"),
            sam_account_name=first(entry, "sAMAccountName"),
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
            found = search(conn, self._settings.base_dn, in_chain, ["cn"])
            return tuple(sorted(Group(e["dn"], first(e, "cn") or e["dn"]) for e in found))
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
                known[sid] = Group(entry["dn"], first(entry, "cn") or entry["dn"])
                with self._sid_lock:
                    self._sid_groups[sid] = (now, known[sid])
        return [known[s] for s in sids if s in known]
