"""Every spelling a directory accepts for one account names one person: the entry's own stable id, not the text."""

import uuid

import pytest
from ldap3 import BASE

from gateway.directory import errors as e
from gateway.directory import open_directory
from tests.directory import samba
from tests.directory import slapd as ol
from tests.directory.samba import SambaDC, user_dn
from tests.directory.slapd import Slapd

pytestmark = pytest.mark.e2e

IMPLICIT = "spell.implicit"  # its explicit UPN is elsewhere, so name@soho.test is only its implicit UPN
IMPLICIT_UPN = "spelled.otherwise@corp.example"


def _object_guid(dc: SambaDC, dn: str) -> str:
    conn = dc.admin()
    conn.search(dn, "(objectClass=*)", BASE, attributes=["objectGUID"])
    guid = str(uuid.UUID(bytes_le=bytes(conn.response[0]["raw_attributes"]["objectGUID"][0])))
    conn.unbind()
    return guid


@pytest.fixture(scope="module")
def implicit_user(samba_dc: SambaDC) -> str:
    conn = samba_dc.admin()
    dn = user_dn(IMPLICIT)
    if not conn.add(dn, attributes={
        "objectClass": ["user"], "sAMAccountName": IMPLICIT, "userPrincipalName": IMPLICIT_UPN,
        "unicodePwd": f'"{samba.PASSWORD}"'.encode("utf-16-le"), "userAccountControl": "512",
    }):  # fmt: skip
        assert conn.result["result"] == 68, conn.result  # already there from an earlier module in this run
    conn.unbind()
    return dn


@pytest.mark.parametrize(
    "spelling",
    [samba.AGENT, samba.AGENT.upper(), f"SOHO\\{samba.AGENT}", f"soho\\{samba.AGENT.title()}",
     f"{samba.AGENT}@soho.test", f"{samba.AGENT.upper()}@SOHO.TEST"],
)  # fmt: skip
def test_every_ad_spelling_of_an_account_is_its_object_guid(samba_dc: SambaDC, spelling: str) -> None:
    directory = open_directory(samba_dc.settings())
    account = directory.find_account(spelling)
    user = directory.verify(account, samba.PASSWORD)
    assert account.person_id == user.person_id == _object_guid(samba_dc, user_dn(samba.AGENT))
    assert account.name == user.login == samba.AGENT  # displayed as the directory spells it, not as typed


@pytest.mark.parametrize("spelling", [f"{IMPLICIT}@soho.test", f"{IMPLICIT.upper()}@Soho.Test", IMPLICIT_UPN])
def test_implicit_and_explicit_upn_both_sign_in_as_one_person(
    samba_dc: SambaDC, implicit_user: str, spelling: str
) -> None:
    user = open_directory(samba_dc.settings()).authenticate(spelling, samba.PASSWORD)
    assert user.person_id == _object_guid(samba_dc, implicit_user)
    assert user.upn == IMPLICIT_UPN


def test_an_implicit_upn_of_another_dns_domain_is_no_account(samba_dc: SambaDC, implicit_user: str) -> None:
    with pytest.raises(e.AccountNotFound):
        open_directory(samba_dc.settings()).find_account(f"{IMPLICIT}@elsewhere.test")


def test_bare_names_are_found_without_a_netbios_domain(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings(netbios_domain=None))
    assert directory.authenticate(samba.AGENT, samba.PASSWORD).sam_account_name == samba.AGENT
    with pytest.raises(e.MalformedLogin):
        directory.find_account(f"SOHO\\{samba.AGENT}")  # the domain prefix cannot be checked: refused


def test_lookup_by_dn_and_by_name_give_the_login_person(samba_dc: SambaDC) -> None:
    directory = open_directory(samba_dc.settings())
    signed_in = directory.authenticate(samba.AGENT.upper(), samba.PASSWORD)
    assert directory.lookup(signed_in.dn).person_id == directory.lookup(samba.AGENT).person_id == signed_in.person_id


def _entry_uuid(server: Slapd, dn: str) -> str:
    conn = server.admin()
    conn.search(dn, "(objectClass=*)", BASE, attributes=["entryUUID"])
    value = str(conn.response[0]["attributes"]["entryUUID"])
    conn.unbind()
    return value.lower()


@pytest.mark.parametrize("template", [ol.USER_TEMPLATE, None])
@pytest.mark.parametrize("spelling", [ol.AGENT, ol.AGENT.upper(), "Agent.Ok"])
def test_every_openldap_spelling_of_an_account_is_its_entry_uuid(
    slapd: Slapd, template: str | None, spelling: str
) -> None:
    user = open_directory(slapd.settings(user_dn_template=template)).authenticate(spelling, ol.PASSWORD)
    assert user.person_id == _entry_uuid(slapd, ol.user_dn(ol.AGENT))
    assert user.login == ol.AGENT


def test_openldap_upn_attribute_signs_in_and_names_the_upn(slapd: Slapd) -> None:
    upn = "upn.person@corp.example"
    conn = slapd.admin()
    conn.add(ol.user_dn("upn.person"), attributes={
        "objectClass": ["inetOrgPerson"], "uid": "upn.person", "cn": "upn", "sn": "upn", "mail": upn,
        "userPassword": ol.PASSWORD,
    })  # fmt: skip
    conn.unbind()
    directory = open_directory(slapd.settings(upn_attribute="mail"))
    user = directory.authenticate(upn.upper(), ol.PASSWORD)
    assert user.person_id == _entry_uuid(slapd, ol.user_dn("upn.person"))
    assert (user.login, user.upn) == ("upn.person", upn)
    assert directory.lookup(user.dn).upn == upn


@pytest.mark.parametrize("unknown", [str(uuid.uuid4()), "not-a-guid", "*)(objectClass=*"])
def test_ad_finds_a_person_by_object_guid_after_a_rename_and_nobody_by_another(samba_dc: SambaDC, unknown: str) -> None:
    """A new CN (so a new DN) and a new account name: `lookup_person` still finds the entry, with its new names; an
    id no entry has, or text that is no GUID (a filter's syntax included), is nobody."""
    sam = f"renamed-{uuid.uuid4().hex[:8]}"
    conn = samba_dc.admin()
    assert conn.add(user_dn(sam), attributes={"objectClass": ["user"], "sAMAccountName": sam}), conn.result
    guid = _object_guid(samba_dc, user_dn(sam))
    assert conn.modify_dn(user_dn(sam), f"CN={sam}-r"), conn.result
    assert conn.modify(user_dn(f"{sam}-r"), {"sAMAccountName": [("MODIFY_REPLACE", [f"{sam}-r"])]}), conn.result
    directory = open_directory(samba_dc.settings())
    try:
        found = directory.lookup_person(guid)
        assert (found.person_id, found.dn, found.login) == (guid, user_dn(f"{sam}-r"), f"{sam}-r")
        with pytest.raises(e.AccountNotFound):
            directory.lookup_person(unknown)
    finally:
        directory.close()
        conn.delete(user_dn(f"{sam}-r"))
        conn.unbind()


def test_openldap_finds_a_person_by_entry_uuid_after_a_rename_and_nobody_by_another(slapd: Slapd) -> None:
    conn = slapd.admin()
    assert conn.add(ol.user_dn("before.rename"), attributes={
        "objectClass": ["inetOrgPerson"], "uid": "before.rename", "cn": "b", "sn": "b", "userPassword": ol.PASSWORD,
    }), conn.result  # fmt: skip
    person_id = _entry_uuid(slapd, ol.user_dn("before.rename"))
    assert conn.modify_dn(ol.user_dn("before.rename"), "uid=after.rename"), conn.result
    directory = open_directory(slapd.settings())
    try:
        found = directory.lookup_person(person_id)
        assert (found.person_id, found.dn, found.login) == (person_id, ol.user_dn("after.rename"), "after.rename")
        for unknown in (str(uuid.uuid4()), "*)(objectClass=*"):
            with pytest.raises(e.AccountNotFound):
                directory.lookup_person(unknown)
    finally:
        directory.close()
        conn.delete(ol.user_dn("after.rename"))
        conn.unbind()
