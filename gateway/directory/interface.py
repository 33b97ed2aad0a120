"""What the rest of the gateway sees of a directory, whichever kind runs behind it."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gateway.directory import errors
from gateway.directory.states import STATE_ERRORS, AccountState


@dataclass(frozen=True, order=True)
class Group:
    """A group the user belongs to, directly or through nesting. ``name`` is for display only: the policy knows a
    group by its DN or (AD) SID, which nobody can copy (``policy.groups``)."""

    dn: str
    name: str
    sid: str | None = None


def group_identifiers(groups: Iterable[Group]) -> list[str]:
    """What the policy matches its group keys with: every group's DN, and its SID where the directory has one."""
    return [g.dn for g in groups] + [g.sid for g in groups if g.sid]


@dataclass(frozen=True)
class Account:
    """The directory entry a typed login names, found by the service account before any bind.

    ``person_id`` is the directory's own stable identifier of the entry (AD ``objectGUID``, OpenLDAP ``entryUUID``,
    the built-in directory's key): every spelling of one account gives the same one, a rename keeps it. ``name`` is
    the account name as the directory spells it, for display. The names beside it are what a client certificate is
    matched with before the password goes to the directory (``sessions.login.certificate_matches``), read in the
    same lookup, as `DirectoryUser` carries them.
    """

    person_id: str
    dn: str
    name: str
    upn: str | None = None
    implicit_upn: str | None = None
    """AD: ``sAMAccountName@<DNS domain>``, which AD accepts as a UPN even when the entry names another."""
    sam_account_name: str | None = None


@dataclass(frozen=True)
class DirectoryUser:
    """A person as the directory knows them at the moment of the read; ``person_id`` and ``login`` (the account
    name as the directory spells it) as ``person_id`` and ``name`` in `Account`."""

    dn: str
    login: str
    person_id: str
    upn: str | None = None
    implicit_upn: str | None = None
    """AD: ``sAMAccountName@<DNS domain>``, which AD accepts as a UPN even when the entry names another."""
    sam_account_name: str | None = None
    display_name: str | None = None
    mail: str | None = None
    phone: str | None = None
    groups: tuple[Group, ...] = ()
    state: AccountState = AccountState.ACTIVE

    def account(self) -> Account:
        """The same person as `find_account` gives them: what a certificate is matched with."""
        return Account(
            person_id=self.person_id,
            dn=self.dn,
            name=self.login,
            upn=self.upn,
            implicit_upn=self.implicit_upn,
            sam_account_name=self.sam_account_name,
        )

    def refusal(self) -> errors.LoginRefused | None:
        """The error a login would get in this state, or None when the account may sign in."""
        cls = STATE_ERRORS.get(self.state)
        return cls(f"account {self.login!r} is {self.state.value}") if cls else None


class Directory(Protocol):
    """Identity source of the gateway: Active Directory, OpenLDAP or the built-in file."""

    def find_account(self, login: str) -> Account:
        """The one entry any spelling of ``login`` names (case, ``DOMAIN\\name``, UPN, implicit UPN, account name),
        looked up as the service account without touching the person's password; raise AccountNotFound (also when
        several entries would match) or MalformedLogin."""
        ...

    def verify(self, account: Account, password: str) -> DirectoryUser:
        """Bind as the account's entry with the password; return the person with their groups; raise a
        `LoginRefused` subclass. This is the only call that sends a guess to the directory."""
        ...

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        """`find_account` then `verify`, for callers that need no step in between (the login flow reserves a
        throttle attempt there)."""
        ...

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        """Re-read a person as the service account (state, groups); raise AccountNotFound if gone."""
        ...

    def lookup_person(self, person_id: str) -> DirectoryUser:
        """`lookup` by the directory's stable id (`Account.person_id`): the same person after a rename or a move to
        another container, which changes both the name and the DN; raise AccountNotFound if no entry has it."""
        ...

    def add_to_group(self, user_dn: str, group_dn: str) -> None:
        """Make the user a direct member of the group; adding an existing member is not an error."""
        ...

    def remove_from_group(self, user_dn: str, group_dn: str) -> None:
        """End the user's direct membership; removing a non-member is not an error."""
        ...

    def close(self) -> None:
        """Close pooled connections."""
        ...
