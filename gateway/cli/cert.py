"""``sohogw cert``: issue, sign, revoke, renew, list and export agent and server certificates."""

from datetime import timedelta
from pathlib import Path
from typing import TextIO

import click
from cryptography.hazmat.primitives import serialization

from certs.pkcs12 import export_pkcs12
from gateway.cli.ca import cli_actor, migrated_engine, open_ca, write_file
from gateway.clock import as_utc, utcnow
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.directory.errors import LoginRefused
from gateway.pki import service
from gateway.secret_input import read_secret, secret_file_option
from gateway.sessions.service import sole_person_signed_in_with
from gateway.settings import Settings, get_settings


def _person_of(settings: Settings, upn: str) -> str:
    """The directory id of the account ``upn`` names (any spelling the sign-in accepts), bound into the register's
    row: taking that person's seat away revokes the certificate by who they are, not by a name someone else may
    carry by then. An account the directory does not know is refused: a certificate for it could not sign in."""
    directory = open_directory(settings.directory_settings)
    try:
        return directory.find_account(upn).person_id
    except LoginRefused:  # no such account, or not a name the directory takes
        raise click.UsageError(f"the directory has no account {upn!r}; add it before issuing its certificate") from None
    finally:
        directory.close()


@click.group()
def cert() -> None:
    """Agent and server certificates."""


@cert.command("issue")
@click.option("--kind", type=click.Choice(["agent", "server"]), default="agent", show_default=True)
@click.option("--upn", help="Agent: the account's userPrincipalName; the certificate is bound to that directory entry.")
@click.option("--wireguard-key", help="Agent: the tunnel's public key (base64), bound into the certificate.")
@click.option("--email", default=None)
@click.option("--dns", "dns_names", multiple=True, help="Server: a DNS name (repeatable).")
@click.option("--ip", "ip_addresses", multiple=True, help="Server: an IP address (repeatable).")
@click.option("--days", type=int, default=None, help="Lifetime (default from the settings).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Agent: the .p12 file to write. Server: a prefix for .crt and .key.",
)
@secret_file_option("p12-passphrase", "the passphrase that protects an agent's .p12")
def cert_issue(
    kind: str,
    upn: str | None,
    wireguard_key: str | None,
    email: str | None,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    days: int | None,
    out: Path,
    p12_passphrase_file: TextIO | None,
) -> None:
    """Generate a key pair and issue a certificate: a PKCS#12 for an agent's browser, or a portal server cert."""
    settings = get_settings()
    authority = open_ca(settings)
    urls = service.publication_urls(settings.public_url)
    if kind == "agent":
        if not upn or not wireguard_key:
            raise click.UsageError("an agent certificate needs --upn and --wireguard-key")
        p12_passphrase = read_secret(p12_passphrase_file, "PKCS#12 passphrase")
        if not p12_passphrase:
            raise click.UsageError("a PKCS#12 export needs a passphrase")
        lifetime = timedelta(days=days or settings.ca.agent_cert_days)
        person_id = _person_of(settings, upn)
        with session_scope(migrated_engine(settings)) as db:
            issued = service.issue_agent_certificate(
                db,
                authority,
                upn=upn,
                wireguard_key=wireguard_key,
                person_id=person_id,
                email=email,
                actor=cli_actor(),
                now=utcnow(),
                lifetime=lifetime,
                urls=urls,
            )
            assert issued.key is not None
            bundle = export_pkcs12(issued.cert, issued.key, authority.chain, p12_passphrase)
        write_file(out, bundle, private=True)
    else:
        if not dns_names and not ip_addresses:
            raise click.UsageError("a server certificate needs at least one --dns or --ip")
        lifetime = timedelta(days=days or settings.ca.server_cert_days)
        with session_scope(migrated_engine(settings)) as db:
            issued = service.issue_server(
                db,
                authority,
                dns_names=list(dns_names),
                ip_addresses=list(ip_addresses),
                actor=cli_actor(),
                now=utcnow(),
                lifetime=lifetime,
                urls=urls,
            )
        assert issued.key is not None
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [issued.cert, *authority.chain[:1]])
        key = issued.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_file(out.with_suffix(".crt"), chain)
        write_file(out.with_suffix(".key"), key, private=True)
    click.echo(f"serial {issued.row.serial}, valid until {as_utc(issued.row.not_after):%Y-%m-%d %H:%M} UTC")


@cert.command("sign-csr")
@click.argument("csr_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--upn", required=True)
@click.option("--wireguard-key", required=True)
@click.option("--email", default=None)
@click.option("--days", type=int, default=None)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def cert_sign_csr(csr_file: Path, upn: str, wireguard_key: str, email: str | None, days: int | None, out: Path) -> None:
    """Sign an agent's CSR: the key never left the agent's machine; identity and tunnel key come from us, and the
    certificate is bound to the directory entry ``--upn`` names."""
    settings = get_settings()
    authority = open_ca(settings)
    person_id = _person_of(settings, upn)
    with session_scope(migrated_engine(settings)) as db:
        issued = service.issue_agent_certificate(
            db,
            authority,
            upn=upn,
            wireguard_key=wireguard_key,
            person_id=person_id,
            email=email,
            actor=cli_actor(),
            now=utcnow(),
            lifetime=timedelta(days=days or settings.ca.agent_cert_days),
            urls=service.publication_urls(settings.public_url),
            csr_pem=csr_file.read_bytes(),
        )
    write_file(out, issued.cert.public_bytes(serialization.Encoding.PEM))
    click.echo(f"serial {issued.row.serial}")


@cert.command("revoke")
@click.argument("serial")
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    type=click.Choice(sorted(service.REASONS)),
    help="RFC 5280 reason code.",
)
def cert_revoke(serial: str, reason: str) -> None:
    """Revoke a certificate; the CRL is republished at once and OCSP answers revoked."""
    settings = get_settings()
    authority = open_ca(settings)
    with session_scope(migrated_engine(settings)) as db:
        row = service.revoke(
            db,
            authority,
            serial,
            reason,
            actor=cli_actor(),
            now=utcnow(),
            crl_validity=timedelta(hours=settings.ca.crl_validity_hours),
        )
    click.echo(f"revoked {row.serial} ({reason})")


@cert.command("renew")
@click.argument("serial")
@click.option("--days", type=int, default=None)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def cert_renew(serial: str, days: int | None, out: Path) -> None:
    """Issue a successor with the same key, identity and tunnel key, and a fresh lifetime."""
    settings = get_settings()
    authority = open_ca(settings)
    with session_scope(migrated_engine(settings)) as db:
        old = service.get_certificate(db, serial)
        default_days = settings.ca.agent_cert_days if old.kind == "agent" else settings.ca.server_cert_days
        issued = service.renew(
            db,
            authority,
            serial,
            actor=cli_actor(),
            now=utcnow(),
            lifetime=timedelta(days=days or default_days),
            urls=service.publication_urls(settings.public_url),
            sole_signer=sole_person_signed_in_with,
        )
    write_file(out, issued.cert.public_bytes(serialization.Encoding.PEM))
    click.echo(f"serial {issued.row.serial} renews {serial}")


@cert.command("list")
@click.option("--expiring-within", type=int, default=None, help="Only those expiring within N days.")
@click.option("--active", is_flag=True, help="Leave revoked certificates out.")
def cert_list(expiring_within: int | None, active: bool) -> None:
    """Every certificate this CA issued, soonest expiry first."""
    settings = get_settings()
    with session_scope(migrated_engine(settings)) as db:
        rows = service.list_certificates(
            db, now=utcnow(), expiring_within_days=expiring_within, include_revoked=not active
        )
    for row in rows:
        state = f"revoked {row.revocation_reason}" if row.revoked_at else "valid"
        click.echo(
            f"{row.serial:<42} {row.kind:<7} {as_utc(row.not_after):%Y-%m-%d %H:%M} {state:<24} "
            f"{row.upn or row.subject}"
        )


@cert.command("export")
@click.argument("serial")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="File to write (default: stdout).")
@click.option("--chain/--no-chain", default=True, help="Append the issuing and root CA.")
def cert_export(serial: str, out: Path | None, chain: bool) -> None:
    """The certificate as PEM, with the CA chain for importing elsewhere."""
    settings = get_settings()
    with session_scope(migrated_engine(settings)) as db:
        pem = service.get_certificate(db, serial).pem.encode()
    if chain:
        pem += (settings.ca_directory / "chain.pem").read_bytes()
    if out is None:
        click.echo(pem.decode(), nl=False)
    else:
        write_file(out, pem)
