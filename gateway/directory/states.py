"""Account states of Active Directory: read from a bind error's sub-code or from the account's attributes.

A refused bind carries the reason in its diagnostic message ("... AcceptSecurityContext error, data 775, ...").
AD only reveals the reason when the password was right; otherwise it says 52e. The re-validation job binds as the
service account instead and reads the same facts from the attributes (MS-ADTS 2.2.16, MS-ADA1/MS-ADA3).
"""

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gateway.directory import errors

_SUB_CODE = re.compile(r"\bdata ([0-9a-f]{3,8})\b", re.IGNORECASE)

# userAccountControl and msDS-User-Account-Control-Computed flags (MS-ADTS 2.2.16).
UF_ACCOUNTDISABLE = 0x2
UF_LOCKOUT = 0x10
UF_PASSWORD_EXPIRED = 0x800000

_NEVER_EXPIRES = (0, 0x7FFFFFFFFFFFFFFF)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


class AccountState(StrEnum):
    """What the directory says about an account, in priority order after ACTIVE."""

    ACTIVE = "active"
    DISABLED = "disabled"
    ACCOUNT_EXPIRED = "account_expired"
    LOCKED = "locked"
    PASSWORD_MUST_CHANGE = "password_must_change"  # noqa: S105 (a state name, not a secret)
    PASSWORD_EXPIRED = "password_expired"  # noqa: S105 (a state name, not a secret)
    OUTSIDE_LOGON_HOURS = "outside_logon_hours"


STATE_ERRORS: dict[AccountState, type[errors.LoginRefused]] = {
    AccountState.DISABLED: errors.AccountDisabled,
    AccountState.ACCOUNT_EXPIRED: errors.AccountExpired,
    AccountState.LOCKED: errors.AccountLocked,
    AccountState.PASSWORD_MUST_CHANGE: errors.PasswordMustChange,
    AccountState.PASSWORD_EXPIRED: errors.PasswordExpired,
    AccountState.OUTSIDE_LOGON_HOURS: errors.OutsideLogonHours,
}

_WITH_AD_CODE: tuple[type[errors.LoginRefused], ...] = (
    errors.WrongPassword,
    errors.AccountNotFound,
    errors.WorkstationNotAllowed,
    *STATE_ERRORS.values(),
)
_BY_AD_CODE = {cls.ad_code: cls for cls in _WITH_AD_CODE if cls.ad_code is not None}


def refusal_from_bind_message(message: str) -> errors.LoginRefused:
    """The exception for an AD bind refusal; an unknown or missing sub-code counts as a wrong password."""
    match = _SUB_CODE.search(message)
    code = match.group(1).lower() if match else ""
    cls = _BY_AD_CODE.get(code, errors.WrongPassword)
    return cls(f"directory refused the bind (AD sub-code {code or 'none'})")


def filetime(value: int) -> datetime:
    """AD's 100-ns intervals since 1601-01-01 UTC as a datetime."""
    return _FILETIME_EPOCH + timedelta(microseconds=value // 10)


def outside_logon_hours(logon_hours: bytes | None, now: datetime) -> bool:
    """True when `now` falls in an hour the 21-byte logonHours bitmap forbids.

    Bit 0 of byte 0 is Sunday 00:00-01:00 UTC; an absent attribute means any hour is allowed.
    """
    if not logon_hours or len(logon_hours) != 21:
        return False
    utc = now.astimezone(UTC)
    hour_of_week = ((utc.weekday() + 1) % 7) * 24 + utc.hour
    return not logon_hours[hour_of_week // 8] >> (hour_of_week % 8) & 1


def state_from_attributes(raw: Mapping[str, Sequence[bytes]], now: datetime) -> AccountState:
    """Account state from a service-account read of the user's raw attributes.

    Needs userAccountControl, msDS-User-Account-Control-Computed (lockout and password expiry as the DC computes
    them from the domain policy), accountExpires, pwdLastSet and logonHours.
    """

    def number(name: str) -> int | None:
        values = raw.get(name) or []
        return int(values[0]) if values else None

    uac = number("userAccountControl") or 0
    computed = number("msDS-User-Account-Control-Computed") or 0
    expires = number("accountExpires")
    hours = raw.get("logonHours") or [b""]
    if uac & UF_ACCOUNTDISABLE:
        return AccountState.DISABLED
    if expires is not None and expires not in _NEVER_EXPIRES and filetime(expires) <= now:
        return AccountState.ACCOUNT_EXPIRED
    if computed & UF_LOCKOUT:
        return AccountState.LOCKED
    if number("pwdLastSet") == 0:
        return AccountState.PASSWORD_MUST_CHANGE
    if computed & UF_PASSWORD_EXPIRED:
        return AccountState.PASSWORD_EXPIRED
    if outside_logon_hours(hours[0], now):
        return AccountState.OUTSIDE_LOGON_HOURS
    return AccountState.ACTIVE
