"""``sohogw totp``: second-factor enrolment codes issued on the host (the first security admin has nobody to ask)."""

import click

from gateway.clock import utcnow
from gateway.db import make_engine, session_scope
from gateway.directory import open_directory
from gateway.sessions import enrolment_codes
from gateway.settings import get_settings

HOST = "host:sohogw"
"""The audit actor of codes issued on the host."""


@click.group()
def totp() -> None:
    """Second factors of privileged people."""


@totp.command("issue-code")
@click.argument("login")
@click.option("--reset", is_flag=True, help="Forget the person's enrolled authenticator first (lost phone).")
def issue_code(login: str, reset: bool) -> None:
    """Print a one-time enrolment code for LOGIN (any spelling the directory accepts); it is valid for 24 hours."""
    settings = get_settings()
    directory = open_directory(settings.directory_settings)
    try:
        account = enrolment_codes.find_account(directory, login)
    finally:
        directory.close()
    engine = make_engine(settings.db_url)
    with session_scope(engine) as db:
        code = enrolment_codes.issue(db, account, issued_by=HOST, issuer_person_id=None, now=utcnow(), reset=reset)
    engine.dispose()
    click.echo(f"enrolment code for {account.name}: {code}")
