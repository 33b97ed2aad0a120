"""Pure parts: AD sub-codes, account attributes, logon hours, settings that must be refused."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from gateway.directory import DirectorySettings
from gateway.directory import errors as e
from gateway.directory.states import AccountState, outside_logon_hours, refusal_from_bind_message, state_from_attributes

SAMBA_MESSAGE = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {}, v1db1"
NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("code", "error"),
    [("52e", e.WrongPassword), ("525", e.AccountNotFound), ("530", e.OutsideLogonHours),
     ("531", e.WorkstationNotAllowed), ("532", e.PasswordExpired), ("533", e.AccountDisabled),
     ("701", e.AccountExpired), ("773", e.PasswordMustChange), ("775", e.AccountLocked)],
)  # fmt: skip
def test_bind_sub_code_maps_to_its_error(code: str, error: type[e.LoginRefused]) -> None:
    refusal = refusal_from_bind_message(SAMBA_MESSAGE.format(code))
    assert type(refusal) is error
    assert refusal.ad_code == code


def test_unknown_sub_code_counts_as_wrong_password() -> None:
    assert type(refusal_from_bind_message("invalid credentials")) is e.WrongPassword


def test_audit_reasons_are_unique() -> None:
    classes = [cls for cls in vars(e).values() if isinstance(cls, type) and issubclass(cls, e.DirectoryError)]
    reasons = [cls.audit_reason for cls in classes]
    assert len(reasons) == len(set(reasons))


def _raw(**values: int | bytes) -> dict[str, list[bytes]]:
    return {k: [v if isinstance(v, bytes) else str(v).encode()] for k, v in values.items()}


@pytest.mark.parametrize(
    ("attributes", "state"),
    [
        (_raw(userAccountControl=512, pwdLastSet=1), AccountState.ACTIVE),
        (_raw(userAccountControl=514, pwdLastSet=1), AccountState.DISABLED),
        (_raw(userAccountControl=512, accountExpires=130000000000000000), AccountState.ACCOUNT_EXPIRED),
        (_raw(userAccountControl=512, accountExpires=0x7FFFFFFFFFFFFFFF), AccountState.ACTIVE),
        (_raw(userAccountControl=512, **{"msDS-User-Account-Control-Computed": 0x10}), AccountState.LOCKED),
        (_raw(userAccountControl=512, pwdLastSet=0), AccountState.PASSWORD_MUST_CHANGE),
        (
            _raw(userAccountControl=512, **{"msDS-User-Account-Control-Computed": 0x800000}),
            AccountState.PASSWORD_EXPIRED,
        ),
        (_raw(userAccountControl=512, logonHours=bytes(21)), AccountState.OUTSIDE_LOGON_HOURS),
    ],
)
def test_state_from_attributes(attributes: dict[str, list[bytes]], state: AccountState) -> None:
    assert state_from_attributes(attributes, NOW) is state


def test_logon_hours_bit_is_the_utc_hour_of_the_week_from_sunday() -> None:
    hours = bytearray(21)
    wednesday_10 = 3 * 24 + 10
    hours[wednesday_10 // 8] |= 1 << (wednesday_10 % 8)
    assert not outside_logon_hours(bytes(hours), NOW)
    assert outside_logon_hours(bytes(hours), NOW.replace(hour=11))


AD = {"kind": "active_directory", "servers": ["ldaps://dc1"], "base_dn": "dc=x", "bind_dn": "s", "bind_password": "p"}


@pytest.mark.parametrize(
    "values",
    [
        {**AD, "servers": ["ldap://dc1:389"]},
        {**AD, "servers": []},
        {**AD, "bind_password": ""},
        {**AD, "servers": ["https://dc1"]},
        {**AD, "kind": "openldap", "group_strategy": "token_groups"},
        {"kind": "builtin"},
    ],
)  # fmt: skip
def test_settings_refuse_clear_text_incomplete_or_mismatched_configuration(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DirectorySettings.model_validate(values)


def test_bind_password_is_not_shown_in_settings_repr() -> None:
    settings = DirectorySettings.model_validate({**AD, "bind_password": "Sekrit-Value"})
    assert "Sekrit-Value" not in repr(settings)
    assert settings.group_strategy == "token_groups"
