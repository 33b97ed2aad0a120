"""``sohogw user``: accounts of the built-in directory (the embedded default; AD and OpenLDAP are managed there)."""

import click

from gateway.directory import BuiltinDirectory
from gateway.errors import GatewayError
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
@click.option("--password", default=None, help="Prompted when absent.")
def add(login: str, groups: tuple[str, ...], upn: str | None, display_name: str | None, password: str | None) -> None:
    """Create or replace an account."""
    secret = password or str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    details = {key: value for key, value in (("upn", upn), ("display_name", display_name)) if value}
    _builtin().add_user(login, secret, groups=list(groups), **details)
    click.echo(f"account {login} in {', '.join(groups) or 'no group'}")


@user.command("disable")
@click.argument("login")
def disable(login: str) -> None:
    """Disable an account; its live sessions end at the next re-validation."""
    _builtin().set_disabled(login, True)
    click.echo(f"account {login} disabled")
