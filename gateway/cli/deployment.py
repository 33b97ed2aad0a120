"""The operator's commands: ``sohogw config check``, ``backup``, ``restore`` and the first-run ``bootstrap``; and the
safety gate ``serve`` passes before it listens."""

import os
import sys
import time
from pathlib import Path
from typing import get_args

import click
from sqlalchemy import Engine

from gateway.audit.service import record
from gateway.cli.ca import cli_actor, migrated_engine
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.deployment.backup import create_backup
from gateway.deployment.bootstrap import bootstrap_policy
from gateway.deployment.findings import Finding, Verdict, failed
from gateway.deployment.probes import dependency_findings
from gateway.deployment.restore import restore_backup
from gateway.deployment.safety import safety_findings
from gateway.deployment.sealed import read_passphrase_file
from gateway.directory.errors import DirectoryError
from gateway.errors import GatewayError
from gateway.settings import CONFIG_ENV, Settings, SettingsError, get_settings, load_settings
from policy import Role


@click.group()
def config() -> None:
    """The gateway's configuration."""


@config.command("check")
@click.option(
    "--file",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=f"The TOML file to check (default: ${CONFIG_ENV}); the SOHOGW_* environment still applies.",
)
def config_check(config_file: Path | None) -> None:
    """Read the settings, check the files they name and reach each dependency. Exit 1 on any FAILED or UNSAFE."""
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file)
    findings: list[Finding]
    try:
        settings = load_settings()
    except SettingsError as error:
        findings = [failed("settings", line) for line in str(error).splitlines()]
    else:
        findings = [*safety_findings(settings), *dependency_findings(settings)]
    for finding in findings:
        click.echo(finding.line())
    bad = [f for f in findings if f.verdict in (Verdict.FAILED, Verdict.UNSAFE)]
    click.echo(f"{len(findings)} checks, {len(bad)} not passed" if bad else f"{len(findings)} checks passed")
    if bad:
        sys.exit(1)


def refuse_unsafe_start(settings: Settings, engine: Engine) -> None:
    """Stop ``serve`` before it listens when a finding makes it unsafe: print each one and audit the refusal."""
    unsafe = [f for f in safety_findings(settings) if f.verdict is Verdict.UNSAFE]
    if not unsafe:
        return
    for finding in unsafe:
        click.echo(finding.line(), err=True)
    with session_scope(engine) as db:
        record(
            db,
            actor=f"sohogw serve ({settings.node_name})",
            source="local",
            action="service.start",
            outcome="refused",
            detail={"unsafe": [f"{f.check}: {f.message}" for f in unsafe]},
        )
    raise click.ClickException("refusing to start: fix the UNSAFE findings above (`sohogw config check` lists all)")


ROLES = get_args(Role)

_PASSPHRASE_OPTION = click.option(
    "--passphrase-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File (mode 0600) holding the backup passphrase, 16+ characters; keep it apart from the backups.",
)


@click.command("backup")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The archive to write.")
@_PASSPHRASE_OPTION
def backup_command(out: Path, passphrase_file: Path) -> None:
    """Database (consistent copy), CA, policy versions and the secrets a restore needs: one encrypted archive."""
    settings = get_settings()
    started = time.monotonic()
    made = create_backup(settings, out, read_passphrase_file(passphrase_file), actor=cli_actor().name)
    facts = made.facts
    click.echo(
        f"wrote {made.path} ({made.size:,} bytes) in {time.monotonic() - started:.1f} s: {facts.certificates} "
        f"certificates ({facts.revoked} revoked), CRL #{facts.crl_number}, {facts.audit_rows} audit rows, "
        f"{facts.policy_versions} policy versions"
    )


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_PASSPHRASE_OPTION
def restore_command(archive: Path, passphrase_file: Path) -> None:
    """Restore an archive into this installation's fresh data directory and empty database, then verify it."""
    settings = get_settings()
    started = time.monotonic()
    restored = restore_backup(settings, archive, read_passphrase_file(passphrase_file), actor=cli_actor().name)
    facts = restored.facts
    click.echo(
        f"restored in {time.monotonic() - started:.1f} s: audit chain intact ({restored.audit_rows_checked} rows), "
        f"{facts.certificates} certificates ({facts.revoked} revoked) and CRL #{facts.crl_number} as archived"
    )
    click.echo(f"CA passphrase: {restored.passphrase_file} (set ca.passphrase_file to it)")
    if restored.config_copy is not None:
        click.echo(f"the archived configuration is in {restored.config_copy}: compare it with yours")


@click.command("bootstrap")
@click.option(
    "--group",
    "mappings",
    multiple=True,
    required=True,
    metavar="ROLE=GROUP",
    help=f"The company's group for a role ({', '.join(ROLES)}), by cn, sAMAccountName or DN; repeatable.",
)
def bootstrap_command(mappings: tuple[str, ...]) -> None:
    """First run: store the default policy with the company's groups (by DN) in place of its own."""
    role_names: dict[str, str] = {}
    for mapping in mappings:
        role, _, name = mapping.partition("=")
        if role not in ROLES or not name.strip():
            raise click.UsageError(f"--group {mapping!r}: give ROLE=GROUP with ROLE one of {', '.join(ROLES)}")
        role_names[role] = name.strip()
    settings = get_settings()
    actor = cli_actor()
    refused: GatewayError | DirectoryError | None = None
    with session_scope(migrated_engine(settings)) as db:
        try:
            version, role_groups = bootstrap_policy(
                db, settings.directory_settings, role_names, actor=actor.name, now=utcnow()
            )
        except (GatewayError, DirectoryError) as error:  # inside the transaction: the refusal's audit row commits
            refused = error
            record(db, actor=actor.name, source=actor.source, action="policy.bootstrap", outcome="refused",
                   detail={"groups": role_names, "problem": str(error)})  # fmt: skip
    if refused is not None:
        raise click.ClickException(str(refused))
    for role, dn in role_groups.items():
        click.echo(f"{role:<15} {dn}")
    click.echo(f"policy version {version.version} is in force; check a person with `sohogw policy explain --user`")
