"""``sohogw user``: accounts of the built-in directory (the embedded default; AD and OpenLDAP are managed there)."""

from typing import TextIO

import click

from gateway.directory import BuiltinDirectory
from gateway.errors import GatewayError
from gateway.secret_input import read_secret, secret_file_option
from gateway.settings import get_settings


def _builtin() -> BuiltinDirectory:
    settings = get_settings().directory_settings
    if settings.kind != "builtin":
        raise GatewayError(f"the directory is {settings.kind}: manage its accounts there, not with sohogw")
    return BuiltinDirectory(settings)


@click.group()
def user() -> None:
    """Accounts of the built-in directory."""


@user.command("add")
@click.argument("login")
@click.option("--group", "groups", multiple=True, help="A group, e.g. SOHO-Agents (repeatable).")
@click.option("--upn", default=None, help="The name agent certificates carry, e.g. zhang.wei@corp.example.")
@click.option("--display-name", default=None)
@secret_file_option("password", "the password")
def add(
    login: str, groups: tuple[str, ...], upn: str | None, display_name: str | None, password_file: TextIO | None
) -> None:
    """Create or replace an account."""
    secret = read_secret(password_file, "Password")
    if not secret:
        raise click.UsageError("an account needs a password")
    details = {key: value for key, value in (("upn", upn), ("display_name", display_name)) if value}
    _builtin().add_user(login, secret, groups=list(groups), **details)
    click.echo(f"account {login} in {', '.join(groups) or 'no group'}")


@user.command("disable")
@click.argument("login")
def disable(login: str) -> None:
    """Disable an account; its live sessions end at the next re-validation."""
    _builtin().set_disabled(login, True)
    click.echo(f"account {login} disabled")
