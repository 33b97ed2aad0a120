"""Findings that make a running gateway unsafe, judged from the settings and the files alone (no network).

``sohogw serve`` runs these before it listens and refuses to start on any UNSAFE one; ``sohogw config check``
prints them with the dependency probes. A key file other local users can read, a secret left at a placeholder or
too short to resist guessing, and a directory whose TLS certificate is not verified are each enough for someone
else to become an agent, so none of them is a warning.
"""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from certs.authority import ISSUING_CERT, ISSUING_KEY, ROOT_KEY
from gateway.deployment.findings import Finding, ok, skipped, unsafe
from gateway.settings import Settings

MIN_MACHINE_SECRET = 16
"""Secrets only machines type (the CA passphrase, the broker's Guacamole secret, the platform's HMAC key)."""
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "change_me", "secret", "password", "admin", "sohogw"})
"""Values copied from examples and tutorials; the production example marks every secret ``CHANGE-ME``."""


def private_file_problem(path: Path) -> str | None:
    """Why ``path`` is not private to the service (None when it is): group/other access, or another owner."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"{path} does not exist"
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; run: chmod 600 {path}"
    if info.st_uid != os.geteuid():
        return f"{path} belongs to uid {info.st_uid}, not to the service (uid {os.geteuid()}); chown it"
    return None


def _ca_files(settings: Settings) -> Finding:
    directory = settings.ca_directory
    if not (directory / ISSUING_CERT).exists():
        return skipped("ca files", f"no CA in {directory} yet (the ca check says what to do)")
    problems = [p for p in (private_file_problem(directory / name) for name in (ROOT_KEY, ISSUING_KEY)) if p]
    if directory.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(f"{directory} is writable by others; run: chmod 700 {directory}")
    if settings.ca.passphrase_file is not None:
        problems += [p for p in [private_file_problem(settings.ca.passphrase_file)] if p]
    if problems:
        return unsafe("ca files", "; ".join(problems))
    return ok("ca files", f"CA keys in {directory} are readable by the service only")


def _secrets(settings: Settings) -> dict[str, tuple[str | None, int]]:
    """Each configured secret by its TOML key, with the least length a machine-made one should have."""
    directory = settings.directory_settings
    voice, supervision = settings.voice, settings.supervision
    found: dict[str, tuple[str | None, int]] = {
        "ca.passphrase": (settings.ca.read_passphrase(), MIN_MACHINE_SECRET),
    }
    database_password = make_url(settings.db_url).password
    if database_password is not None:
        found["database_url's password"] = (str(database_password), 1)
    if directory.kind != "builtin":
        found["directory.bind_password"] = (directory.bind_password.get_secret_value(), 1)
    optional = {
        "portal.proxy_secret": (settings.portal.proxy_secret, MIN_MACHINE_SECRET),
        "seats.guacamole_secret": (settings.seats.guacamole_secret, MIN_MACHINE_SECRET),
        "supervision.platform_secret": (supervision.platform_secret, MIN_MACHINE_SECRET),
        "supervision.mail.password": (supervision.mail.password, 1),
        "sms.bearer_token": (settings.sms.bearer_token, 1),
    }
    for key, (secret, least) in optional.items():
        if secret is not None:
            found[key] = (secret.get_secret_value(), least)
    if voice.platform == "ari":
        found["voice.ari.password"] = (voice.ari.password.get_secret_value(), 1)
    if voice.platform == "webhook":
        found["voice.webhook.secret"] = (voice.webhook.secret.get_secret_value(), MIN_MACHINE_SECRET)
    return found


def _default_secrets(settings: Settings) -> Finding:
    weak = []
    for key, (value, least) in _secrets(settings).items():
        if value is None:
            continue
        if value.strip().lower() in PLACEHOLDER_SECRETS or "change-me" in value.lower():
            weak.append(f"{key} is a placeholder")
        elif len(value) < least:
            weak.append(f"{key} is shorter than {least} characters")
    if weak:
        return unsafe("secrets", "; ".join(weak) + " (the values are not shown)")
    count = sum(value is not None for value, _ in _secrets(settings).values())
    return ok("secrets", f"{count} secrets set, none a placeholder")


def _directory_tls(settings: Settings) -> Finding:
    directory = settings.directory_settings
    if directory.kind == "builtin":
        return skipped("directory tls", "built-in directory: no network")
    if directory.tls.insecure_skip_verify:
        return unsafe(
            "directory tls",
            "directory.tls.insecure_skip_verify is on: anyone on the path can answer binds; set tls.ca_file instead",
        )
    how = "StartTLS" if directory.tls.start_tls else "LDAPS"
    return ok("directory tls", f"{how}, certificates verified against {directory.tls.ca_file or 'the system CAs'}")


def _other_keys(settings: Settings) -> Iterator[Path]:
    if settings.portal.tls_key_file is not None:
        yield settings.portal.tls_key_file
    vpn_key = settings.vpn.key_file(settings.data_dir)
    if settings.vpn.enabled and vpn_key.exists():
        yield vpn_key
    builtin = settings.directory_settings.builtin_file
    if settings.directory_settings.kind == "builtin" and builtin is not None and builtin.exists():
        yield builtin


def _key_files(settings: Settings) -> Finding:
    paths = list(_other_keys(settings))
    problems = [p for p in (private_file_problem(path) for path in paths) if p]
    if problems:
        return unsafe("key files", "; ".join(problems))
    return ok("key files", f"{len(paths)} key or password files readable by the service only")


def safety_findings(settings: Settings) -> list[Finding]:
    """The checks ``serve`` insists on; cheap and local."""
    return [_ca_files(settings), _key_files(settings), _default_secrets(settings), _directory_tls(settings)]
