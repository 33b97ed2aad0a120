"""A stand-in for a company's AD CS: RSA root and issuing CA and user certificates shaped like AD CS makes them.

Built with `cryptography` directly, not with our library, so trusting it tests interoperability rather than our
code agreeing with itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certs.identity import upn_other_name

# AD CS names the template in a "Certificate Template Information" extension (1.3.6.1.4.1.311.21.7) on every
# certificate it issues; the template's own OID is forest-specific, this one is made up.
USER_TEMPLATE = x509.ObjectIdentifier("1.3.6.1.4.1.311.21.8.1234567.7654321.1.2")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "corp"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, sign_certs: bool, key_encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class CompanyCa:
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: rsa.RSAPrivateKey

    @classmethod
    def create(cls, now: datetime) -> CompanyCa:
        root_key, issuing_key = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
        root_name = _name("Corp Root CA")
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=365))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(sign_certs=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        issuing = (
            x509.CertificateBuilder()
            .subject_name(_name("Corp Issuing CA"))
            .issuer_name(root_name)
            .public_key(issuing_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=300))
            .not_valid_after(now + timedelta(days=1800))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(sign_certs=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        return cls(root=root, issuing=issuing, issuing_key=issuing_key)

    def user_certificate(
        self,
        upn: str,
        now: datetime,
        crl_url: str | None = None,
        ocsp_url: str | None = None,
        usages: tuple[x509.ObjectIdentifier, ...] = (
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ),
        lifetime: timedelta = timedelta(days=365),
        key: rsa.RSAPrivateKey | None = None,
    ) -> x509.Certificate:
        """A user certificate as AD CS's "User" template issues it (UPN otherName, RSA, template extension); pass
        ``key`` to hold the private key (to present the certificate in TLS)."""
        key = key or rsa.generate_private_key(65537, 2048)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(upn.split("@")[0]))
            .issuer_name(self.issuing.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now - timedelta(days=1) + lifetime)
            .add_extension(_usage(sign_certs=False, key_encipherment=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
            .add_extension(x509.SubjectAlternativeName([upn_other_name(upn)]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuing_key.public_key()), critical=False
            )
            .add_extension(x509.MSCertificateTemplate(USER_TEMPLATE, 100, 4), critical=False)
        )
        if crl_url:
            # AD CS lists an ldap:// location first; the checker must skip it and use the http:// one.
            names = [
                x509.UniformResourceIdentifier("ldap:///CN=Corp%20Issuing%20CA,CN=CDP"),
                x509.UniformResourceIdentifier(crl_url),
            ]
            builder = builder.add_extension(
                x509.CRLDistributionPoints([x509.DistributionPoint(names, None, None, None)]), critical=False
            )
        if ocsp_url:
            access = x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
            )
            builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
        return builder.sign(self.issuing_key, hashes.SHA256())

    def crl(
        self, revoked_serials: list[int], now: datetime, next_update: datetime, number: int = 1
    ) -> x509.CertificateRevocationList:
        """A CRL issued at ``now``; AD CS numbers each CRL it publishes one higher than the last (``number``)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing.subject)
            .last_update(now)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        return builder.sign(self.issuing_key, hashes.SHA256())


@dataclass
class DelegatedResponder:
    """An OCSP responder with its own certificate (OCSPSigning EKU) issued by a CA, as AD CS Online Responders run."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    revoked: set[int]

    @classmethod
    def for_ca(cls, ca: CompanyCa, now: datetime) -> DelegatedResponder:
        key = rsa.generate_private_key(65537, 2048)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Corp OCSP Responder"))
            .issuer_name(ca.issuing.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=14))
            .add_extension(_usage(sign_certs=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .sign(ca.issuing_key, hashes.SHA256())
        )
        return cls(cert=cert, key=key, revoked=set())

    def answer(self, request_der: bytes, issuer: x509.Certificate, now: datetime) -> bytes:
        """A signed response about the single certificate in the request, with our certificate included."""
        request = ocsp.load_der_ocsp_request(request_der)
        revoked = request.serial_number in self.revoked
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                request.issuer_name_hash,
                request.issuer_key_hash,
                request.serial_number,
                request.hash_algorithm,
                ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                now,
                now + timedelta(hours=1),
                now if revoked else None,
                None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.NAME, self.cert)
            .certificates([self.cert])
            .sign(self.key, hashes.SHA256())
        )
        return response.public_bytes(serialization.Encoding.DER)
