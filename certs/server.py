"""TLS server certificates for the portal (and any other gateway listener)."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from certs.authority import Authority
from certs.errors import InvalidIdentity
from certs.issue import IssuedCertificate
from certs.keys import generate_key
from certs.profiles import SERVER_AUTH, PublicationUrls, end_entity_extensions
from certs.signing import sign_end_entity

SERVER_LIFETIME = timedelta(days=90)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _server_names(dns_names: list[str], ip_addresses: list[IpAddress]) -> list[x509.GeneralName]:
    if not dns_names and not ip_addresses:
        raise InvalidIdentity("a server certificate needs at least one DNS name or IP address")
    names: list[x509.GeneralName] = []
    for dns_name in dns_names:
        if not dns_name.isascii() or not dns_name or any(ch.isspace() or ch in "/:@" for ch in dns_name):
            raise InvalidIdentity(f"{dns_name!r} is not a DNS name; give an ASCII (punycode) host name")
        names.append(x509.DNSName(dns_name.lower()))
    names.extend(x509.IPAddress(address) for address in ip_addresses)
    return names


def issue_server_certificate(
    authority: Authority,
    dns_names: list[str],
    ip_addresses: list[IpAddress],
    now: datetime,
    lifetime: timedelta = SERVER_LIFETIME,
    urls: PublicationUrls | None = None,
) -> IssuedCertificate:
    """A new P-256 key and a serverAuth certificate naming the given DNS names and IP addresses."""
    names = _server_names(dns_names, ip_addresses)
    key = generate_key()
    common_name = dns_names[0].lower() if dns_names else str(ip_addresses[0])
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, authority.org_name),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    extensions = end_entity_extensions(key.public_key(), authority.issuing_key.public_key(), SERVER_AUTH, names, urls)
    cert = sign_end_entity(authority, subject, key.public_key(), extensions, now, lifetime)
    return IssuedCertificate(cert=cert, key=key)
