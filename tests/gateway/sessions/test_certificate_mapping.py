"""Which account a client certificate names, judged against real Samba AD accounts as the service account finds
them before any bind: UPN first (the implicit UPN too), an AD CS subject holding the user's full DN, and never
another person."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.identity import identity_of, upn_other_name
from gateway.directory import Account, open_directory
from gateway.sessions.login import certificate_matches
from tests.directory import samba
from tests.directory.samba import SambaDC, user_dn

pytestmark = pytest.mark.e2e

MAPPED = "map.implicit"  # explicit UPN elsewhere: map.implicit@soho.test is only its implicit UPN
MAPPED_UPN = "mapped.otherwise@corp.example"


def _certificate(subject: list[x509.NameAttribute], upn: str | None = None) -> x509.Certificate:
    """A user certificate as AD CS shapes one: subject in X.509 order (DC first), the UPN in the SAN otherName."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corp Issuing CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
    )
    if upn:
        builder = builder.add_extension(x509.SubjectAlternativeName([upn_other_name(upn)]), critical=False)
    return builder.sign(key, hashes.SHA256())


def _full_dn_subject(cn: str) -> list[x509.NameAttribute]:
    return [
        x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "test"),
        x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "soho"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Users"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ]


def _cn(name: str) -> list[x509.NameAttribute]:
    return [x509.NameAttribute(NameOID.COMMON_NAME, name)]


@pytest.fixture(scope="module")
def users(samba_dc: SambaDC) -> dict[str, Account]:
    conn = samba_dc.admin()
    conn.add(user_dn(MAPPED), attributes={
        "objectClass": ["user"], "sAMAccountName": MAPPED, "userPrincipalName": MAPPED_UPN,
        "unicodePwd": f'"{samba.PASSWORD}"'.encode("utf-16-le"), "userAccountControl": "512",
    })  # fmt: skip
    conn.unbind()
    directory = open_directory(samba_dc.settings())
    found = {name: directory.find_account(name) for name in (MAPPED, samba.AGENT, "obrien")}
    directory.close()
    return found


def test_the_implicit_upn_in_a_certificate_names_its_account(users: dict[str, Account]) -> None:
    for upn in (f"{MAPPED}@soho.test", MAPPED_UPN.upper()):
        assert certificate_matches(identity_of(_certificate(_cn("whatever"), upn)), users[MAPPED])


def test_an_ad_cs_subject_holding_the_full_dn_names_its_account(users: dict[str, Account]) -> None:
    special = users["obrien"]  # CN "O*Brien (Ops) \ Night": the CN is neither the account name nor the UPN
    assert certificate_matches(identity_of(_certificate(_full_dn_subject(samba.SPECIAL_CN))), special)
    assert not certificate_matches(identity_of(_certificate(_full_dn_subject(samba.SPECIAL_CN))), users[samba.AGENT])


def test_a_certificate_naming_another_person_never_matches(users: dict[str, Account]) -> None:
    agent = users[samba.AGENT]
    another_upn = _certificate(_cn(samba.AGENT), upn=f"{MAPPED}@soho.test")  # the CN says agent, the UPN not
    assert not certificate_matches(identity_of(another_upn), agent)
    assert not certificate_matches(identity_of(_certificate(_cn(MAPPED))), agent)
    assert not certificate_matches(identity_of(_certificate(_full_dn_subject(MAPPED))), agent)
    assert certificate_matches(identity_of(_certificate(_cn(samba.AGENT.upper()))), agent)  # no UPN: CN = account
