"""Reach each dependency the settings name, the way the running gateway will, and say in one line how it went.

A probe never raises: whatever goes wrong becomes a FAILED finding whose message says what was tried and what to
fix. Messages name hosts and files, never a password.
"""

import os
import shutil
import smtplib
import socket
import ssl
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.db import make_engine
from gateway.deployment.findings import Finding, failed, ok, skipped
from gateway.directory import errors as directory_errors
from gateway.directory.servers import ServerList
from gateway.migrate import alembic_config, current_revisions
from gateway.pki.ca import open_authority
from gateway.pki.errors import CaNotReady
from gateway.settings import Settings
from gateway.vpn import nft

PROBE_TIMEOUT_SECONDS = 5.0
CAP_NET_ADMIN = 12


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def database(settings: Settings) -> Finding:
    url = settings.db_url
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        return failed("database", f"{kind} does not answer: {_first_line(error)}")
    finally:
        engine.dispose()
    wanted = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    have = set(current_revisions(url))
    if have != wanted:
        return failed(
            "database",
            f"{kind} schema at {', '.join(sorted(have)) or 'nothing'}, this release needs {', '.join(sorted(wanted))}: "
            "run `sohogw db upgrade`",
        )
    return ok("database", f"{kind} answers, schema at {', '.join(sorted(have))} (current)")


def directory(settings: Settings) -> Finding:
    """Bind as the service account, as lookups and re-validation will."""
    config = settings.directory_settings
    if config.kind == "builtin":
        path = config.builtin_file
        if path is None or not path.exists():
            return failed("directory", f"built-in directory {path} does not exist: add users with `sohogw user add`")
        return ok("directory", f"built-in directory {path}")
    try:
        connection = ServerList(config).open(config.bind_dn, config.bind_password.get_secret_value())
    except directory_errors.DirectoryError as error:
        return failed("directory", f"{error} (check servers, the network and tls.ca_file)")
    try:
        if not connection.bind():
            message = connection.result.get("message", "") or connection.result.get("description", "")
            return failed("directory", f"service account bind refused: check bind_dn and bind_password ({message})")
        return ok("directory", f"bound as {config.bind_dn} on {connection.server.name}")
    finally:
        connection.unbind()


def certificate_authority(settings: Settings) -> Finding:
    try:
        authority = open_authority(settings.ca)
    except CaNotReady as error:
        return failed("ca", error.message)
    return ok("ca", f"{authority.issuing_cert.subject.rfc4514_string()} opens with the configured passphrase")


def _has_net_admin() -> bool:
    """CAP_NET_ADMIN in the effective set (root, or granted by systemd's AmbientCapabilities)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return os.geteuid() == 0


def wireguard(settings: Settings) -> Finding:
    vpn = settings.vpn
    if not vpn.enabled:
        return skipped("wireguard", "vpn.enabled is false: agents get no tunnel")
    if not _has_net_admin():
        return failed("wireguard", "the service lacks CAP_NET_ADMIN: run as root or grant it (systemd unit)")
    if Path("/sys/module/wireguard").exists():
        return ok("wireguard", f"kernel WireGuard for {vpn.interface}, port {vpn.listen_port}/udp")
    found = shutil.which("wireguard-go")
    if found is None:
        return failed("wireguard", "no WireGuard kernel module and no wireguard-go: apt-get install wireguard-go")
    return ok("wireguard", f"{found} for {vpn.interface}, port {vpn.listen_port}/udp")


def nftables(settings: Settings) -> Finding:
    """List the tables the way the gateway loads its scope: through libnftables, in ``vpn.netns`` if set."""
    vpn = settings.vpn
    if not vpn.enabled or not vpn.firewall:
        return skipped("nftables", "vpn off or vpn.firewall false: no per-agent scope is loaded")
    try:
        with nft.Nftables(vpn.netns, timeout=PROBE_TIMEOUT_SECONDS) as nftables:
            nftables.run("list tables")
    except nft.FirewallError as error:
        return failed("nftables", str(error)[:200])
    return ok("nftables", "nft can list and replace rule sets")


def guacd(settings: Settings) -> Finding:
    """Open guacd's port and start its handshake (``select``): only guacd answers with an ``args`` instruction."""
    address, guacd_socket = settings.seats.guacd_address, settings.seats.guacd()
    if address is None or guacd_socket is None:
        return skipped("guacd", "seats.guacd_address not set: Guacamole apps are not checked")
    try:
        with socket.create_connection(guacd_socket, timeout=PROBE_TIMEOUT_SECONDS) as sock:
            sock.sendall(b"6.select,3.vnc;")
            answer = sock.recv(64)
    except OSError as error:
        return failed("guacd", f"{address} does not answer: {error.strerror or error}")
    if not answer.startswith(b"4.args,"):
        return failed("guacd", f"{address} answers, but not as guacd does")
    return ok("guacd", f"guacd answers at {address}")


def smtp(settings: Settings) -> Finding:
    mail = settings.supervision.mail
    if not mail.host:
        return skipped("smtp", "supervision.mail.host not set: alerts go by page (and SMS) only")
    try:
        with smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout_seconds) as server:
            server.ehlo()
            if mail.starttls:
                server.starttls(context=ssl.create_default_context())
            if mail.username and mail.password is not None:
                server.login(mail.username, mail.password.get_secret_value())
            server.noop()
    except smtplib.SMTPAuthenticationError:
        return failed("smtp", f"{mail.host}:{mail.port} refuses supervision.mail.username and password")
    except (OSError, smtplib.SMTPException) as error:
        return failed("smtp", f"{mail.host}:{mail.port} does not accept us: {error}")
    return ok("smtp", f"{mail.host}:{mail.port} accepts us{' over STARTTLS' if mail.starttls else ''}")


def dependency_findings(settings: Settings) -> list[Finding]:
    return [
        database(settings),
        directory(settings),
        certificate_authority(settings),
        wireguard(settings),
        nftables(settings),
        guacd(settings),
        smtp(settings),
    ]
