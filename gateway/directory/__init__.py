"""Who a person is and which groups they are in: Active Directory, OpenLDAP, or the built-in file.

Use `open_directory(settings.directory)` and the `Directory` interface; errors are in `gateway.directory.errors`.
The calls block (network I/O): from async code run them in a worker thread.
"""

from collections.abc import Callable
from datetime import UTC, datetime

from gateway.directory.ad import ActiveDirectory
from gateway.directory.builtin import BuiltinDirectory
from gateway.directory.interface import Account, Directory, DirectoryUser, Group, group_identifiers
from gateway.directory.ldap_directory import OpenLdapDirectory
from gateway.directory.settings import DirectorySettings
from gateway.directory.states import AccountState


def open_directory(settings: DirectorySettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Directory:
    """The directory the settings describe. `now` is the clock used to judge account expiry and logon hours."""
    if settings.kind == "active_directory":
        return ActiveDirectory(settings, now)
    if settings.kind == "openldap":
        return OpenLdapDirectory(settings)
    return BuiltinDirectory(settings)


__all__ = [
    "Account",
    "AccountState",
    "ActiveDirectory",
    "BuiltinDirectory",
    "Directory",
    "DirectorySettings",
    "DirectoryUser",
    "Group",
    "OpenLdapDirectory",
    "group_identifiers",
    "open_directory",
]
