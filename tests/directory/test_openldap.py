"""The OpenLDAP path against a real slapd: StartTLS, DN template, memberof overlay and recursive groups."""

import pytest

from gateway.directory import errors as e
from gateway.directory import open_directory
from gateway.directory.logins import normalized_dn
from tests.directory import slapd as ol
from tests.directory.slapd import Slapd

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("strategy", ["member_of", "recursive"])
@pytest.mark.parametrize("login", [ol.AGENT, ol.CHINESE, ol.SPECIAL])
def test_member_of_nested_group_logs_in_with_its_groups(slapd: Slapd, strategy: str, login: str) -> None:
    user = open_directory(slapd.settings(group_strategy=strategy)).authenticate(login, ol.PASSWORD)
    assert normalized_dn(user.dn) == normalized_dn(ol.user_dn(login))
    assert user.sam_account_name == login
    assert [g.name for g in user.groups] == ["all-staff", "soho-agents", "team-a"]


def test_group_depth_is_bounded(slapd: Slapd) -> None:
    user = open_directory(slapd.settings(max_group_depth=2)).authenticate(ol.AGENT, ol.PASSWORD)
    assert [g.name for g in user.groups] == ["soho-agents", "team-a"]


def test_login_without_template_searches_for_the_user(slapd: Slapd) -> None:
    user = open_directory(slapd.settings(user_dn_template=None)).authenticate(ol.SPECIAL, ol.PASSWORD)
    assert normalized_dn(user.dn) == normalized_dn(ol.user_dn(ol.SPECIAL))


@pytest.mark.parametrize("template", [ol.USER_TEMPLATE, None])
def test_wrong_password_and_unknown_account_are_told_apart_for_audit(slapd: Slapd, template: str | None) -> None:
    directory = open_directory(slapd.settings(user_dn_template=template))
    with pytest.raises(e.WrongPassword):
        directory.authenticate(ol.PROBE, "not-the-password")
    with pytest.raises(e.AccountNotFound):
        directory.authenticate("nobody", ol.PASSWORD)


@pytest.mark.parametrize("attack", ["*", ")(uid=*", "admin*)(|(objectClass=*", "agent.ok,ou=people"])
def test_injection_in_the_login_is_refused(slapd: Slapd, attack: str) -> None:
    for template in (ol.USER_TEMPLATE, None):
        with pytest.raises(e.LoginRefused):
            open_directory(slapd.settings(user_dn_template=template)).authenticate(attack, ol.PASSWORD)
    with pytest.raises(e.AccountNotFound):
        open_directory(slapd.settings()).lookup(attack)


def test_lookup_and_group_changes(slapd: Slapd) -> None:
    directory = open_directory(slapd.settings())
    probe = ol.user_dn(ol.PROBE)
    assert "soho-supervisors" not in {g.name for g in directory.lookup(ol.PROBE).groups}
    directory.add_to_group(probe, ol.group_dn("soho-supervisors"))
    assert "soho-supervisors" in {g.name for g in directory.lookup(probe).groups}
    directory.remove_from_group(probe, ol.group_dn("soho-supervisors"))
    assert "soho-supervisors" not in {g.name for g in directory.lookup(ol.PROBE).groups}
    directory.close()
