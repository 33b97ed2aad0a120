"""``sohogw policy import|export|explain``: the policy at the command line, for the admin who cannot sign in yet
(a company whose group names differ from the default policy's) and for scripts. Every use is audited, a refused
import too, exactly as on the security admin's page."""

import sys
from pathlib import Path

import click

from gateway.audit.service import record
from gateway.cli.ca import cli_actor, migrated_engine
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.policies.errors import InvalidPolicy
from gateway.policies.service import current_version, effective_policy, export_policy, import_policy
from gateway.settings import get_settings


@click.group()
def policy() -> None:
    """The policy in force: import a new version, export it, explain it for a person."""


@policy.command("import")
@click.argument("document", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--comment", default="", help="Why this version, for the history.")
def policy_import(document: Path, comment: str) -> None:
    """Validate DOCUMENT (YAML) and make it the policy in force; a refused one changes nothing."""
    actor = cli_actor()
    refused: InvalidPolicy | None = None
    with session_scope(migrated_engine(get_settings())) as db:
        try:
            version = import_policy(
                db, document.read_text(encoding="utf-8"), actor=actor.name, source=actor.source, now=utcnow(),
                comment=comment,
            )  # fmt: skip
        except InvalidPolicy as error:  # caught inside the transaction, so the refusal's audit row commits
            refused = error
    if refused is not None:
        click.echo(refused.message, err=True)
        sys.exit(1)
    click.echo(f"policy version {version.version} is in force")


@policy.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: standard output.")
def policy_export(out: Path | None) -> None:
    """The policy in force as YAML (the embedded default until a version was imported)."""
    actor = cli_actor()
    with session_scope(migrated_engine(get_settings())) as db:
        document = export_policy(db)
        version = current_version(db)
        record(db, actor=actor.name, source=actor.source, action="policy.export", outcome="success",
               target=f"version {version.version}" if version else "default")  # fmt: skip
    if out is None:
        click.echo(document, nl=False)
        return
    out.write_text(document, encoding="utf-8")
    click.echo(f"wrote {out}")


@policy.command("explain")
@click.option("--user", "login", default=None, help="Look the person up in the directory for their groups.")
@click.option("--groups", default=None, help="Or name the groups, comma-separated.")
def policy_explain(login: str | None, groups: str | None) -> None:
    """What the policy in force gives a person (or a set of groups), each value with the group that set it."""
    if (login is None) == (groups is None):
        raise click.UsageError("give --user or --groups")
    settings = get_settings()
    if login is not None:
        directory = open_directory(settings.directory_settings)
        try:
            found = directory.lookup(login)
        finally:
            directory.close()
        # A policy names groups by DN or by name: offer both, whichever the document uses matches.
        chosen = [part for group in found.groups for part in (group.dn, group.name)]
    else:
        chosen = [g.strip() for g in (groups or "").split(",") if g.strip()]
    actor = cli_actor()
    with session_scope(migrated_engine(settings)) as db:
        effective = effective_policy(db, chosen, utcnow())
        record(db, actor=actor.name, source=actor.source, action="policy.explain", outcome="success",
               target=login or ",".join(chosen), detail={"groups": chosen})  # fmt: skip
    click.echo(f"groups that apply: {', '.join(effective.groups) or 'none'}")
    click.echo(f"roles: {', '.join(sorted(effective.roles)) or 'none: this person cannot sign in'}")
    for name, reason in effective.reasons.items():
        click.echo(f"  {name}: {reason}")
