"""Filter metacharacters and NUL bytes in a login or password never widen a search or pass a bind."""

import pytest
from ldap3 import SUBTREE

from gateway.directory import errors as e
from gateway.directory import open_directory
from gateway.directory.logins import equality_filter
from tests.directory import samba
from tests.directory.samba import BASE_DN, SambaDC

pytestmark = pytest.mark.e2e

LEAKING = ["*", "agent*", "admin*)(sAMAccountName=*", "*)(|(objectClass=*)"]  # match entries when unescaped
ATTACKS = [
    "*",
    "agent*",
    ")(uid=*",
    "admin*)(|(objectClass=*",
    f"{samba.AGENT})(|(objectClass=*",
    "*)(sAMAccountName=*",
]


def _count(samba_dc: SambaDC, ldap_filter: str) -> int:
    conn = samba_dc.admin()
    conn.search(BASE_DN, ldap_filter, SUBTREE, attributes=["cn"])
    found = [r for r in conn.response if r["type"] == "searchResEntry"]
    conn.unbind()
    return len(found)


@pytest.mark.parametrize("attack", LEAKING)
def test_escaped_filter_matches_nothing_where_the_raw_filter_matches(samba_dc: SambaDC, attack: str) -> None:
    assert _count(samba_dc, f"(&(objectClass=user)(sAMAccountName={attack}))") >= 1
    assert _count(samba_dc, equality_filter("sAMAccountName", attack, "user")) == 0


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_in_the_login_is_refused(samba_dc: SambaDC, attack: str) -> None:
    directory = open_directory(samba_dc.settings())
    with pytest.raises(e.LoginRefused):
        directory.authenticate(attack, samba.PASSWORD)
    with pytest.raises(e.AccountNotFound):
        directory.lookup(attack)


@pytest.mark.parametrize("password", ["*", "*)(|(objectClass=*", f"{samba.PASSWORD}\x00", "\x00"])
def test_injection_in_the_password_is_refused(samba_dc: SambaDC, password: str) -> None:
    directory = open_directory(samba_dc.settings())
    with pytest.raises(e.WrongPassword):
        directory.authenticate(samba.PROBE, password)
    # The right password still works (and resets the bad-password count towards the lockout threshold).
    assert directory.authenticate(samba.PROBE, samba.PASSWORD).sam_account_name == samba.PROBE


@pytest.mark.parametrize("login", [f"{samba.AGENT}\x00", "\x00", "agent\nok", "", "   "])
def test_control_characters_in_the_login_are_refused_before_binding(samba_dc: SambaDC, login: str) -> None:
    with pytest.raises(e.MalformedLogin):
        open_directory(samba_dc.settings(servers=["ldaps://127.0.0.1:1"])).authenticate(login, samba.PASSWORD)


def test_lookup_by_special_characters_finds_exactly_that_user(samba_dc: SambaDC) -> None:
    # `o*brien(ops)@...` escaped matches the one entry; as a pattern it would also match e.g. `oXbrien(ops)@...`.
    assert _count(samba_dc, equality_filter("userPrincipalName", samba.SPECIAL_UPN, "user")) == 1
    assert open_directory(samba_dc.settings()).lookup(samba.SPECIAL_UPN).display_name == samba.SPECIAL_CN
