"""Nested AD groups (the policy turns groups into roles), non-ASCII and special-character logins, group changes."""

import pytest

from gateway.directory import open_directory
from tests.directory import samba
from tests.directory.samba import SambaDC, group_dn, user_dn

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("strategy", ["token_groups", "in_chain"])
def test_member_of_a_nested_group_sees_the_outer_group(samba_dc: SambaDC, strategy: str) -> None:
    user = open_directory(samba_dc.settings(group_strategy=strategy)).authenticate(samba.AGENT, samba.PASSWORD)
    names = {g.name for g in user.groups}
    assert {"Team-A", "SOHO-Agents"} <= names  # SOHO-Agents only through Team-A
    assert "SOHO-Supervisors" not in names


def test_direct_member_sees_its_group_by_name_and_dn(samba_dc: SambaDC) -> None:
    user = open_directory(samba_dc.settings()).authenticate(samba.SUPERVISOR, samba.PASSWORD)
    assert {(g.name, g.dn.casefold()) for g in user.groups} >= {
        ("SOHO-Supervisors", group_dn("SOHO-Supervisors").casefold())
    }


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
    assert "SOHO-Agents" in {g.name for g in by_name.groups}


def test_user_with_filter_and_dn_special_characters_logs_in_and_is_found_by_dn(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings())
    user = directory.authenticate(samba.SPECIAL_UPN, samba.PASSWORD)
    assert user.display_name == samba.SPECIAL_CN
    assert "SOHO-Agents" in {g.name for g in user.groups}
    assert directory.lookup(user.dn).upn == samba.SPECIAL_UPN


def test_adding_and_removing_a_group_changes_groups_seen_by_lookup(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings())
    mover = user_dn(samba.MOVER)
    assert "SOHO-HR" not in {g.name for g in directory.lookup(mover).groups}
    directory.add_to_group(mover, group_dn("SOHO-HR"))
    directory.add_to_group(mover, group_dn("SOHO-HR"))  # already a member: no error
    assert "SOHO-HR" in {g.name for g in directory.lookup(samba.MOVER).groups}
    directory.remove_from_group(mover, group_dn("SOHO-HR"))
    directory.remove_from_group(mover, group_dn("SOHO-HR"))  # no longer a member: no error
    assert "SOHO-HR" not in {g.name for g in directory.lookup(mover).groups}
    directory.close()
