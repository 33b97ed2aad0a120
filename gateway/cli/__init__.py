"""The ``sohogw`` command: serve, migrate, run the CA, verify the audit log."""

import logging

import click

from certs.errors import CertificateError
from gateway.cli.audit import audit
from gateway.cli.ca import ca, crl
from gateway.cli.cert import cert
from gateway.cli.deployment import backup_command, bootstrap_command, config, restore_command
from gateway.cli.policy import policy
from gateway.cli.totp import totp
from gateway.cli.user import user
from gateway.cli.vpn import vpn
from gateway.directory.errors import DirectoryError
from gateway.errors import GatewayError
from gateway.settings import SettingsError, get_settings


class GatewayCli(click.Group):
    """Domain, certificate and settings errors end a command with their message and exit 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (SettingsError, GatewayError, CertificateError, DirectoryError) as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=GatewayCli)
def cli() -> None:
    """SOHO Gateway: home agents get only the agent application, over a certificate-bound tunnel."""


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations (SQLite or PostgreSQL, from the settings)."""
    from gateway.migrate import current_revisions, upgrade

    url = get_settings().db_url
    upgrade(url, revision)
    click.echo(f"database at revision {', '.join(current_revisions(url))}")


@cli.command()
@click.option("--host", default=None, help="Listen address (default: the listen_host setting).")
@click.option("--port", type=int, default=None, help="Listen port (default: the listen_port setting).")
def serve(host: str | None, port: int | None) -> None:
    """Run the gateway: portal, API, CRL/OCSP and every background worker in one process."""
    import uvicorn

    from gateway.app import create_app
    from gateway.cli.deployment import refuse_unsafe_start
    from gateway.db import make_engine
    from gateway.migrate import upgrade
    from gateway.pki.ca import open_authority
    from gateway.pki.client_cas import ClientCaBundle
    from gateway.web.tls import ClientCertificateConfig, tls_options

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    refuse_unsafe_start(settings, engine)
    authority = open_authority(settings.ca)
    options: dict[str, object] = {}
    portal = settings.portal
    client_cas = None
    if portal.tls_cert_file is not None and portal.tls_key_file is not None:
        # Browsers are asked for a certificate from any CA we trust: ours and every imported company CA, kept
        # current while serving (a scheduled job refreshes the live TLS context).
        client_cas = ClientCaBundle(engine, authority, settings.data_dir / "client-cas.pem")
        client_cas.refresh()
        options = tls_options(portal.tls_cert_file, portal.tls_key_file, client_cas.path)
    app = create_app(settings, engine=engine, authority=authority, client_cas=client_cas)
    # The portal decides itself whether a proxy proved itself (settings.portal.proxy_secret): uvicorn must not
    # rewrite the client address from X-Forwarded-For first.
    config = ClientCertificateConfig(
        app,
        host=host or settings.listen_host,
        port=port or settings.listen_port,
        log_level="info",
        proxy_headers=False,
        **options,  # type: ignore[arg-type]
    )
    config.load()
    if client_cas is not None:
        client_cas.context = config.ssl
    uvicorn.Server(config).run()


cli.add_command(ca)
cli.add_command(cert)
cli.add_command(crl)
cli.add_command(audit)
cli.add_command(user)
cli.add_command(totp)
cli.add_command(config)
cli.add_command(backup_command)
cli.add_command(restore_command)
cli.add_command(bootstrap_command)
cli.add_command(policy)
cli.add_command(vpn)


def main() -> None:
    cli()
