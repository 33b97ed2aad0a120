"""Each Active Directory account state is its own exception, from a real Samba DC's bind and attributes."""

from datetime import UTC, datetime

import pytest

from gateway.directory import AccountState, open_directory
from gateway.directory import errors as e
from tests.directory import samba
from tests.directory.samba import SambaDC

pytestmark = pytest.mark.e2e

STATES = [
    (samba.DISABLED, e.AccountDisabled, AccountState.DISABLED),
    (samba.LOCKED, e.AccountLocked, AccountState.LOCKED),
    (samba.PASSWORD_EXPIRED, e.PasswordExpired, AccountState.PASSWORD_EXPIRED),
    (samba.MUST_CHANGE, e.PasswordMustChange, AccountState.PASSWORD_MUST_CHANGE),
    (samba.ACCOUNT_EXPIRED, e.AccountExpired, AccountState.ACCOUNT_EXPIRED),
    (samba.NIGHT_SHIFT, e.OutsideLogonHours, AccountState.OUTSIDE_LOGON_HOURS),
]
STATE_ERROR = {state: error for _login, error, state in STATES}


@pytest.mark.parametrize(("login", "error", "_state"), STATES)
def test_bad_account_state_refuses_login_with_its_own_error(
    samba_dc: SambaDC, login: str, error: type[e.LoginRefused], _state: AccountState
) -> None:
    directory = open_directory(samba_dc.settings())
    with pytest.raises(error) as refused:
        directory.authenticate(login, samba.PASSWORD)
    assert type(refused.value) is error
    assert refused.value.audit_reason.startswith("directory.")
    assert f"sub-code {error.ad_code}" in refused.value.detail


def test_workstation_restriction_refuses_login(samba_dc: SambaDC) -> None:
    with pytest.raises(e.WorkstationNotAllowed):
        open_directory(samba_dc.settings()).authenticate(samba.WORKSTATION, samba.PASSWORD)


def test_wrong_password_is_wrong_password_not_a_state(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings())
    with pytest.raises(e.WrongPassword):
        directory.authenticate(samba.PROBE, "Not-The-Passw0rd")
    with pytest.raises(e.WrongPassword):  # AD reveals a state only to the right password
        directory.authenticate(samba.DISABLED, "Not-The-Passw0rd")


def test_unknown_user_gets_the_wrong_password_message(samba_dc: SambaDC) -> None:
    with pytest.raises(e.LoginRefused) as refused:
        open_directory(samba_dc.settings()).authenticate("nobody.here", samba.PASSWORD)
    assert refused.value.user_message == e.WrongPassword.user_message


@pytest.mark.parametrize(("login", "_error", "state"), STATES)
def test_lookup_reads_account_state_from_attributes(
    samba_dc: SambaDC, login: str, _error: type[e.LoginRefused], state: AccountState
) -> None:
    user = open_directory(samba_dc.settings()).lookup(login)
    assert user.state is state
    assert isinstance(user.refusal(), STATE_ERROR[state])


def test_lookup_of_a_healthy_account_is_active(samba_dc: SambaDC) -> None:
    user = open_directory(samba_dc.settings()).lookup(samba.AGENT)
    assert user.state is AccountState.ACTIVE
    assert user.refusal() is None


def test_account_expiry_is_judged_by_the_injected_clock(samba_dc: SambaDC) -> None:
    before_expiry = open_directory(samba_dc.settings(), now=lambda: datetime(2012, 1, 1, tzinfo=UTC))
    assert before_expiry.lookup(samba.ACCOUNT_EXPIRED).state is AccountState.ACTIVE


def test_lookup_of_a_removed_account_raises_not_found(samba_dc: SambaDC) -> None:
    with pytest.raises(e.AccountNotFound):
        open_directory(samba_dc.settings()).lookup("gone.user")


def test_empty_password_is_refused_before_any_connection(samba_dc: SambaDC) -> None:
    # An empty password would be an unauthenticated bind (RFC 4513 §5.1.2). With only a dead server configured,
    # any attempt to connect would raise DirectoryUnavailable instead.
    directory = open_directory(samba_dc.settings(servers=["ldaps://127.0.0.1:1"]))
    with pytest.raises(e.EmptyPassword):
        directory.authenticate(samba.AGENT, "")
    with pytest.raises(e.DirectoryUnavailable):
        directory.authenticate(samba.AGENT, samba.PASSWORD)
