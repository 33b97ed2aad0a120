"""Roles from nested AD groups, logins with non-ASCII and special characters, and HR's group changes."""

import pytest

from gateway.directory import open_directory
from tests.directory import samba
from tests.directory.samba import SambaDC, group_dn, user_dn

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("strategy", ["token_groups", "in_chain"])
def test_member_of_a_nested_group_gets_the_agent_role(samba_dc: SambaDC, strategy: str) -> None:
    user = open_directory(samba_dc.settings(group_strategy=strategy)).authenticate(samba.AGENT, samba.PASSWORD)
    assert user.roles == {"agent"}
    names = {g.name for g in user.groups}
    assert {"Team-A", "SOHO-Agents"} <= names  # SOHO-Agents only through Team-A
    assert "SOHO-Supervisors" not in names


def test_role_group_given_as_dn_matches_regardless_of_case(samba_dc: SambaDC) -> None:
    user = open_directory(samba_dc.settings()).authenticate(samba.SUPERVISOR, samba.PASSWORD)
    assert user.roles == {"supervisor"}


def test_login_returns_identity_attributes(samba_dc: SambaDC) -> None:
    user = open_directory(samba_dc.settings()).authenticate(f"SOHO\\{samba.AGENT}", samba.PASSWORD)
    assert user.dn == user_dn(samba.AGENT)
    assert user.upn == f"{samba.AGENT}@soho.test"
    assert user.sam_account_name == samba.AGENT
    assert user.mail == f"{samba.AGENT}@corp.example"
    assert user.phone == "+86 571 8888 0000"


def test_user_with_a_chinese_name_logs_in_by_name_and_upn(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings())
    by_name = directory.authenticate(samba.CHINESE, samba.PASSWORD)
    by_upn = directory.authenticate(f"{samba.CHINESE}@soho.test", samba.PASSWORD)
    assert by_name.dn == by_upn.dn == user_dn(samba.CHINESE)
    assert by_name.display_name == samba.CHINESE
    assert by_name.roles == {"agent"}


def test_user_with_filter_and_dn_special_characters_logs_in_and_is_found_by_dn(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings())
    user = directory.authenticate(samba.SPECIAL_UPN, samba.PASSWORD)
    assert user.display_name == samba.SPECIAL_CN
    assert user.roles == {"agent"}
    assert directory.lookup(user.dn).upn == samba.SPECIAL_UPN


def test_upn_suffix_lets_bare_names_bind_as_upn(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings(netbios_domain=None, upn_suffix="soho.test"))
    assert directory.authenticate(samba.AGENT, samba.PASSWORD).sam_account_name == samba.AGENT


def test_adding_and_removing_a_group_changes_roles_seen_by_lookup(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings())
    mover = user_dn(samba.MOVER)
    assert directory.lookup(mover).roles == frozenset()
    directory.add_to_group(mover, group_dn("SOHO-HR"))
    directory.add_to_group(mover, group_dn("SOHO-HR"))  # already a member: no error
    assert directory.lookup(samba.MOVER).roles == {"hr"}
    directory.remove_from_group(mover, group_dn("SOHO-HR"))
    directory.remove_from_group(mover, group_dn("SOHO-HR"))  # no longer a member: no error
    assert directory.lookup(mover).roles == frozenset()
    directory.close()
