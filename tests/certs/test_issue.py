"""Agent and server certificates: what they contain, and every bad input refused with its own error."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certs import (
    Authority,
    AuthorityExpired,
    CsrSignatureInvalid,
    InvalidIdentity,
    InvalidWireGuardKey,
    MalformedCsr,
    PublicationUrls,
    UnsupportedKeyType,
    UntrustedCertificate,
    identity_of,
    init_authority,
    issue_agent_with_generated_key,
    issue_server_certificate,
    renew_certificate,
    sign_agent_csr,
    wireguard_key_of,
)
from certs.identity import UPN_OID
from certs.wgkey import wireguard_key_name
from tests.certs.conftest import PASSPHRASE

URLS = PublicationUrls(ocsp_url="http://ca.example.test/ocsp", crl_url="http://ca.example.test/issuing.crl")


def make_csr(key: CertificateIssuerPrivateKeyTypes, upn_claim: str = "mallory@corp.example") -> bytes:
    """A CSR that claims an identity of its own, which the CA must ignore."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, upn_claim)]))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(upn_claim)]), critical=False)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def test_agent_certificate_carries_upn_email_clientauth_and_wireguard_key(
    authority: Authority, now: datetime, wg_key: str
) -> None:
    issued = issue_agent_with_generated_key(
        authority, "alice@corp.example", wg_key, now, email="alice@mail.example", account="alice", urls=URLS
    )
    cert = issued.cert
    identity = identity_of(cert)
    assert (identity.upn, identity.email, identity.common_name) == ("alice@corp.example", "alice@mail.example", "alice")
    assert identity.wireguard_public_key == wg_key == wireguard_key_of(cert)
    assert identity.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    upn_entry = san.get_values_for_type(x509.OtherName)[0]
    assert upn_entry.type_id == UPN_OID and upn_entry.value == b"\x0c\x12alice@corp.example"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, URLS.ocsp_url)
    ]
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == URLS.crl_url
    assert cert.not_valid_after_utc == now + timedelta(days=7)
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [wireguard_key_name(wg_key).value]
    cert.verify_directly_issued_by(authority.issuing_cert)


def test_agent_certificate_without_urls_has_no_aia_or_cdp(authority: Authority, now: datetime, wg_key: str) -> None:
    cert = issue_agent_with_generated_key(authority, "bob@corp.example", wg_key, now).cert
    extension_types = {type(ext.value) for ext in cert.extensions}
    assert x509.AuthorityInformationAccess not in extension_types
    assert x509.CRLDistributionPoints not in extension_types
    assert identity_of(cert).common_name == "bob@corp.example"
    assert identity_of(cert).email is None


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(65537, 2048),
    ],
    ids=["p256", "p384", "rsa2048"],
)
def test_csr_key_is_used_and_its_claimed_identity_is_ignored(
    authority: Authority, now: datetime, wg_key: str, key: CertificateIssuerPrivateKeyTypes
) -> None:
    cert = sign_agent_csr(authority, make_csr(key), "carol@corp.example", wg_key, now)
    assert cert.public_key() == key.public_key()
    identity = identity_of(cert)
    assert identity.upn == "carol@corp.example" and identity.common_name == "carol@corp.example"
    assert identity.email is None  # the CSR's rfc822Name claim did not pass through


def test_malformed_csr_is_refused(authority: Authority, now: datetime, wg_key: str) -> None:
    with pytest.raises(MalformedCsr):
        sign_agent_csr(
            authority,
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "a@corp.example",
            wg_key,
            now,
        )
    with pytest.raises(MalformedCsr):
        sign_agent_csr(authority, b"not a csr at all", "a@corp.example", wg_key, now)


def test_csr_with_altered_signature_is_refused(authority: Authority, now: datetime, wg_key: str) -> None:
    csr = x509.load_pem_x509_csr(make_csr(ec.generate_private_key(ec.SECP256R1())))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte lies inside the ECDSA signature's s value
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrSignatureInvalid):
        sign_agent_csr(authority, tampered, "a@corp.example", wg_key, now)


@pytest.mark.parametrize(
    "key",
    [
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP521R1()),
        rsa.generate_private_key(65537, 1024),  # noqa: S505 - a too-short key is the point of the test
    ],
    ids=["ed25519", "p521", "rsa1024"],
)
def test_unsupported_csr_key_types_are_refused(
    authority: Authority, now: datetime, wg_key: str, key: CertificateIssuerPrivateKeyTypes
) -> None:
    with pytest.raises(UnsupportedKeyType):
        sign_agent_csr(authority, make_csr(key), "a@corp.example", wg_key, now)


@pytest.mark.parametrize("bad_key", ["", "not-base64!!", "AAAA", "A" * 43 + "=" + "A"])
def test_bad_wireguard_key_is_refused(authority: Authority, now: datetime, bad_key: str) -> None:
    with pytest.raises(InvalidWireGuardKey):
        issue_agent_with_generated_key(authority, "a@corp.example", bad_key, now)


@pytest.mark.parametrize("bad_upn", ["alice", "@corp.example", "alice@", "al ice@corp.example"])
def test_bad_upn_is_refused(authority: Authority, now: datetime, wg_key: str, bad_upn: str) -> None:
    with pytest.raises(InvalidIdentity):
        issue_agent_with_generated_key(authority, bad_upn, wg_key, now)


def test_non_ascii_email_is_refused(authority: Authority, now: datetime, wg_key: str) -> None:
    with pytest.raises(InvalidIdentity):
        issue_agent_with_generated_key(authority, "a@corp.example", wg_key, now, email="zhāng@corp.example")


def test_issuing_ca_not_yet_valid_refuses_to_issue(authority: Authority, now: datetime, wg_key: str) -> None:
    with pytest.raises(AuthorityExpired, match="not valid before"):
        issue_agent_with_generated_key(authority, "a@corp.example", wg_key, now - timedelta(days=1))


def test_expired_issuing_ca_refuses_to_issue(authority: Authority, now: datetime, wg_key: str) -> None:
    with pytest.raises(AuthorityExpired, match="expired"):
        issue_agent_with_generated_key(authority, "a@corp.example", wg_key, now + timedelta(days=11 * 365))


def test_lifetime_beyond_the_issuing_ca_is_refused(authority: Authority, now: datetime, wg_key: str) -> None:
    with pytest.raises(AuthorityExpired, match="shorter lifetime"):
        issue_agent_with_generated_key(authority, "a@corp.example", wg_key, now, lifetime=timedelta(days=10 * 365 + 1))


def test_renewal_keeps_identity_and_key_with_new_serial_and_validity(
    authority: Authority, now: datetime, wg_key: str
) -> None:
    old = issue_agent_with_generated_key(authority, "dan@corp.example", wg_key, now, email="dan@corp.example").cert
    later = now + timedelta(days=6)
    new = renew_certificate(authority, old, later, urls=URLS)
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject and new.public_key() == old.public_key()
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName) == (
        old.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    )
    assert wireguard_key_of(new) == wg_key
    assert new.not_valid_after_utc == later + timedelta(days=7)


def test_renewal_of_a_foreign_certificate_is_refused(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path
) -> None:
    other = init_authority(tmp_path / "other-ca", PASSPHRASE, "Other Org", now)
    foreign = issue_agent_with_generated_key(other, "eve@corp.example", wg_key, now).cert
    with pytest.raises(UntrustedCertificate, match="only our own"):
        renew_certificate(authority, foreign, now)


def test_server_certificate_names_dns_and_ip_for_server_auth(authority: Authority, now: datetime) -> None:
    issued = issue_server_certificate(
        authority, ["Portal.Example.Test"], [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")], now
    )
    san = issued.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["portal.example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert list(issued.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert wireguard_key_of(issued.cert) is None


def test_server_certificate_needs_a_name(authority: Authority, now: datetime) -> None:
    with pytest.raises(InvalidIdentity):
        issue_server_certificate(authority, [], [], now)
    with pytest.raises(InvalidIdentity):
        issue_server_certificate(authority, ["https://portal.example.test"], [], now)
