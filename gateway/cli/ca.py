"""``sohogw ca`` and ``sohogw crl``: the security admin's CA at the command line, and the helpers its
commands share with ``sohogw cert`` (`gateway.cli.cert`)."""

import getpass
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from certs.authority import init_authority
from gateway.audit.service import record
from gateway.clock import as_utc, utcnow
from gateway.db import make_engine, session_scope
from gateway.migrate import upgrade
from gateway.pki import service
from gateway.pki.ca import open_authority
from gateway.pki.trust import import_company_ca
from gateway.settings import Settings, get_settings


def cli_actor() -> service.Actor:
    """The local admin running the command, as the audit log names them."""
    return service.Actor(name=f"cli:{getpass.getuser()}", source="local")


def _passphrase(settings: Settings, confirm: bool = False) -> str:
    configured = settings.ca.read_passphrase()
    if configured is not None:
        return configured
    return str(click.prompt("CA passphrase", hide_input=True, confirmation_prompt=confirm))


def open_ca(settings: Settings):  # type: ignore[no-untyped-def]
    """The issuing CA, unlocked with the configured passphrase or one typed at the prompt."""
    return open_authority(settings.ca, _passphrase(settings))


def migrated_engine(settings: Settings):  # type: ignore[no-untyped-def]
    """The database engine, after bringing the schema up to date (a CLI may run before the server ever has)."""
    upgrade(settings.db_url)
    return make_engine(settings.db_url)


def write_file(path: Path, data: bytes, private: bool = False) -> None:
    """Write an output file (owner-only when it holds a key) and say so.

    The bytes go into a new file made with its final mode (``mkstemp`` makes it 0600) beside the target, which then
    replaces the target: a key is never readable by others, not even for an instant, and someone who opened a file
    already at that path (one they created world-readable in advance) keeps reading the old, empty file.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            if not private:
                os.fchmod(out.fileno(), 0o644)
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    click.echo(f"wrote {path}")


@click.group()
def ca() -> None:
    """The built-in two-tier certificate authority."""


@ca.command("init")
def ca_init() -> None:
    """Create the root and issuing CA (EC P-256), keys encrypted with the passphrase, and publish the first CRL."""
    settings = get_settings()
    now = utcnow()
    authority = init_authority(
        settings.ca_directory, _passphrase(settings, confirm=True), settings.ca.organization, now
    )
    with session_scope(migrated_engine(settings)) as db:
        record(
            db,
            actor=cli_actor().name,
            source="local",
            action="ca.init",
            outcome="success",
            target=authority.issuing_cert.subject.rfc4514_string(),
        )
        service.publish_crl(db, authority, now=now, validity=timedelta(hours=settings.ca.crl_validity_hours))
    click.echo(f"CA created in {settings.ca_directory}: {authority.issuing_cert.subject.rfc4514_string()}")


@ca.command("trust")
@click.argument("chain_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="How admins will know this CA, e.g. 'Corp AD CS'.")
def ca_trust(chain_file: Path, name: str) -> None:
    """Accept client certificates of a company CA (e.g. AD CS) too: import its chain, root included (PEM or DER).

    Its certificates are then checked against their own CRL distribution points and OCSP responders."""
    settings = get_settings()
    with session_scope(migrated_engine(settings)) as db:
        row = import_company_ca(db, name, chain_file.read_bytes(), actor=cli_actor(), now=utcnow())
    click.echo(f"trusting {row.subject} (SHA-256 {row.fingerprint_sha256})")


@ca.command("refresh")
def ca_refresh() -> None:
    """Ask the company CAs' CRL servers now and end every live session whose certificate they revoke.

    The servers ask again on their own every ``ca.company_crl_refresh_seconds``; this is for "she was fired a minute
    ago": it fetches each CRL the live sessions' certificates name (the gateway's own certificates are judged by its
    register), ends the revoked sessions at once, says what each CRL holds, and writes an audit row."""
    from certs.revocation import HttpRevocationChecker
    from gateway.sessions.revalidation import revalidate

    settings = get_settings()
    authority, engine, now = open_ca(settings), migrated_engine(settings), utcnow()
    checker = HttpRevocationChecker()
    grace = timedelta(minutes=settings.portal.revocation_unknown_grace_minutes)
    report = revalidate(engine, None, authority, checker, now, grace)
    held = checker.held()
    for crl_held in held:
        crl = crl_held.crl
        click.echo(
            f"{crl_held.url}: {len(crl)} revoked, published {crl.last_update_utc:%Y-%m-%d %H:%M} UTC, "
            f"next by {crl.next_update_utc:%Y-%m-%d %H:%M} UTC"
        )
    with session_scope(engine) as db:
        record(
            db,
            actor=cli_actor().name,
            source="local",
            action="ca.refresh",
            outcome="success",
            detail={"crls": [h.url for h in held], "sessions_checked": report.checked, "sessions_ended": report.ended},
        )
    click.echo(f"{len(held)} company CRLs fetched; {report.checked} live sessions checked, {report.ended} ended")


@click.command("crl")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the DER CRL here.")
@click.option("--pem", is_flag=True, help="Write PEM instead of DER.")
def crl(out: Path | None, pem: bool) -> None:
    """Publish a fresh CRL now (as the pki.crl worker does) and optionally write it to a file."""
    from cryptography import x509

    settings = get_settings()
    authority = open_ca(settings)
    with session_scope(migrated_engine(settings)) as db:
        publication = service.publish_crl(
            db, authority, now=utcnow(), validity=timedelta(hours=settings.ca.crl_validity_hours)
        )
    click.echo(
        f"CRL #{publication.number}: {publication.revoked_count} revoked, next update "
        f"{as_utc(publication.next_update):%Y-%m-%d %H:%M} UTC"
    )
    if out is not None:
        data = publication.der
        if pem:
            data = x509.load_der_x509_crl(data).public_bytes(serialization.Encoding.PEM)
        write_file(out, data)
