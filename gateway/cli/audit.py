"""``sohogw audit``: verify the chain, show recent events."""

import sys

import click

from gateway.audit.service import recent, verify_chain
from gateway.clock import as_utc
from gateway.db import make_engine, session_scope
from gateway.settings import get_settings


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
def verify() -> None:
    """Check every row's hash and link; name the first row that was altered, removed or reordered."""
    with session_scope(make_engine(get_settings().db_url)) as db:
        report = verify_chain(db)
    if report.intact:
        click.echo(f"audit chain intact: {report.rows_checked} rows")
        return
    click.echo(f"audit chain BROKEN at row {report.first_bad_seq}: {report.problem}", err=True)
    sys.exit(1)


@audit.command("show")
@click.option("--limit", default=20, show_default=True)
def show(limit: int) -> None:
    """The newest events."""
    with session_scope(make_engine(get_settings().db_url)) as db:
        for event in recent(db, limit):
            click.echo(
                f"{event.seq:>6} {as_utc(event.at):%Y-%m-%d %H:%M:%S} {event.actor:<20} {event.action:<16} "
                f"{event.outcome:<8} {event.target} {event.source}"
            )
