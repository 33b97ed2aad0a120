"""Why a directory refused a login or could not answer: one exception per reason.

Each class carries the message shown to the person, a stable audit reason code, the HTTP status the gateway's
exception handler should use, and for Active Directory the bind error sub-code ("data 775") it stands for.
"""

from typing import ClassVar


class DirectoryError(Exception):
    """Base of every directory error: `user_message` is for the person, `str(error)` for logs (never a password)."""

    user_message: ClassVar[str] = "The directory could not answer."
    audit_reason: ClassVar[str] = "directory.error"
    http_status: ClassVar[int] = 500
    ad_code: ClassVar[str | None] = None

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.user_message)
        self.detail = detail


class DirectoryUnavailable(DirectoryError):
    user_message = "The sign-in service cannot reach the company directory. Try again in a minute."
    audit_reason = "directory.unavailable"
    http_status = 503


class DirectoryMisconfigured(DirectoryError):
    user_message = "The sign-in service is misconfigured. Tell the security administrator."
    audit_reason = "directory.misconfigured"


class LoginRefused(DirectoryError):
    """The directory answered, and the answer is no."""

    user_message = "Sign-in refused."
    audit_reason = "directory.refused"
    http_status = 401


class MalformedLogin(LoginRefused):
    user_message = "That user name cannot be used. Type your user name as your administrator gave it."
    audit_reason = "directory.malformed_login"


class EmptyPassword(LoginRefused):
    # An empty password is an unauthenticated bind (RFC 4513 §5.1.2) that many servers answer with success.
    user_message = "Type your password."
    audit_reason = "directory.empty_password"


class WrongPassword(LoginRefused):
    user_message = "User name or password is wrong."
    audit_reason = "directory.wrong_password"
    ad_code = "52e"


class AccountNotFound(LoginRefused):
    user_message = WrongPassword.user_message  # same words: do not tell a guesser which names exist
    audit_reason = "directory.account_not_found"
    ad_code = "525"


class AccountDisabled(LoginRefused):
    user_message = "Your account is disabled. Ask your supervisor or HR."
    audit_reason = "directory.account_disabled"
    http_status = 403
    ad_code = "533"


class AccountLocked(LoginRefused):
    user_message = "Your account is locked after too many wrong passwords. Wait, or ask the help desk."
    audit_reason = "directory.account_locked"
    http_status = 423
    ad_code = "775"


class PasswordExpired(LoginRefused):
    user_message = "Your password has expired. Change it on an office PC or through the help desk."
    audit_reason = "directory.password_expired"
    http_status = 403
    ad_code = "532"


class PasswordMustChange(LoginRefused):
    user_message = "You must set a new password before first use. Change it on an office PC or with the help desk."
    audit_reason = "directory.password_must_change"
    http_status = 403
    ad_code = "773"


class AccountExpired(LoginRefused):
    user_message = "Your account has expired. Ask HR to extend it."
    audit_reason = "directory.account_expired"
    http_status = 403
    ad_code = "701"


class OutsideLogonHours(LoginRefused):
    user_message = "Your account may not sign in at this time of day."
    audit_reason = "directory.outside_logon_hours"
    http_status = 403
    ad_code = "530"


class WorkstationNotAllowed(LoginRefused):
    user_message = "Your account may only sign in from named computers; this gateway is not one of them."
    audit_reason = "directory.workstation_not_allowed"
    http_status = 403
    ad_code = "531"
