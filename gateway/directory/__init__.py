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
from gateway.directory.watch import Changed, DirectoryWatch, StatusReport


def open_directory(settings: DirectorySettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Directory:
    """The directory the settings describe. `now` is the clock used to judge account expiry and logon hours."""
    if settings.kind == "active_directory":
        return ActiveDirectory(settings, now)
    if settings.kind == "openldap":
        return OpenLdapDirectory(settings)
    return BuiltinDirectory(settings)


def open_directory_watch(
    directory: Directory, containers: Callable[[], frozenset[str]], on_change: Changed, on_status: StatusReport
) -> DirectoryWatch | None:
    """The change subscription of an AD or OpenLDAP directory (not yet started), or None: the built-in directory's
    file is edited outside the process, so its changes are left to the re-validation poll; so are a server
    directory's when its ``watch_changes`` is off."""
    if isinstance(directory, ActiveDirectory | OpenLdapDirectory):
        return directory.watch_changes(containers, on_change, on_status)
    return None


__all__ = [
    "Account",
    "AccountState",
    "ActiveDirectory",
    "BuiltinDirectory",
    "Directory",
    "DirectorySettings",
    "DirectoryUser",
    "DirectoryWatch",
    "Group",
    "OpenLdapDirectory",
    "group_identifiers",
    "open_directory",
    "open_directory_watch",
]
