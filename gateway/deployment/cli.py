"""``sohogw config check``: validate a configuration and reach every dependency it names, one line per check."""

import os
import sys
from pathlib import Path

import click
from sqlalchemy import Engine

from gateway.audit.service import record
from gateway.db import session_scope
from gateway.deployment.findings import Finding, Verdict, failed
from gateway.deployment.probes import dependency_findings
from gateway.deployment.safety import safety_findings
from gateway.settings import CONFIG_ENV, Settings, SettingsError, load_settings


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
