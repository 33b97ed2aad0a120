"""Compile an effective policy into Guacamole connection parameters (names as guacd reads them).

Every data-loss parameter is written out, "true" or "false", rather than left to guacd's
default, so what a connection allows can be read from its parameters alone.
"""

from datetime import UTC
from posixpath import join

from policy.effective import EffectivePolicy
from policy.errors import PolicyError
from policy.schema import GuacamoleApp, X11App


def _flag(value: bool) -> str:
    return "true" if value else "false"


def compile_guacamole(
    effective: EffectivePolicy,
    app: X11App | GuacamoleApp | str,
    *,
    user: str | None = None,
    learned_fingerprint: str | None = None,
    recording_tag: str = "",
) -> dict[str, str]:
    """Parameters for guacd's RDP or VNC plugin.

    `user` names the person's own drive folder (needed only when the drive is allowed; a shared
    folder would carry files between people), the RDP account where the app says ``{user}``, and
    prefixes the recording's name. `learned_fingerprint` is the certificate the broker recorded for
    an app trusted on first use. `recording_tag` makes the recording's name unique per launch: guacd
    expands no ``${GUAC_DATE}`` (the Java web app does) and stops recording silently after
    ``name.255``.
    """
    published = effective.app(app if isinstance(app, str) else app.id)
    if not isinstance(published, GuacamoleApp):
        raise PolicyError(f"app {published.id!r} runs on the {published.backend} backend, not guacamole")
    rules = effective.display
    parameters = {
        "hostname": published.host,
        "port": str(published.effective_port),
        "disable-copy": _flag(not rules.clipboard_out),
        "disable-paste": _flag(not rules.clipboard_in),
    }
    if published.protocol == "rdp":
        parameters |= _rdp(effective, published, user) | _certificate(published, learned_fingerprint)
    else:
        parameters["enable-sftp"] = "false"
    # guacd records a connection from its start to its end: "customer calls only" records a Guacamole seat whole
    # (X11 seats are recorded per call by the gateway's own recorder, docs/recordings.md).
    if effective.records(published.id, in_customer_call=True):
        stamp = effective.evaluated_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        parameters |= {
            "recording-path": effective.storage.recording_path,
            "recording-name": "-".join(filter(None, (user or "seat", published.id, stamp, recording_tag))),
            "create-recording-path": "true",
        }
    return parameters


def _rdp(effective: EffectivePolicy, app: GuacamoleApp, user: str | None) -> dict[str, str]:
    rules = effective.display
    parameters = {
        "enable-drive": _flag(rules.drive),
        "disable-download": _flag(not rules.download),
        "disable-upload": _flag(not rules.upload),
        "enable-printing": _flag(rules.printing),
        # guacd's default plays the seat's sound. Off, guacd loads neither rdpsnd nor rdpdr (with printing and the
        # drive off too): two MCS channel joins fewer, and FreeRDP 2 sleeps 100 ms for each reply not there yet.
        "disable-audio": _flag(not rules.audio),
        "enable-audio-input": _flag(rules.audio_input),
    }
    if app.remote_app is not None:
        parameters["remote-app"] = f"||{app.remote_app}"
    if app.username is not None:
        if "{user}" in app.username and not user:
            raise PolicyError(f"app {app.id!r} signs in as {{user}}: compile_guacamole needs the user's name")
        parameters["username"] = app.username.replace("{user}", user or "")
    if rules.drive:
        if not user or "/" in user or user.startswith("."):
            raise PolicyError("the drive is allowed: compile_guacamole needs the user's name for their own folder")
        parameters |= {"drive-path": join(effective.storage.drive_path, user), "create-drive-path": "true"}
    return parameters


def _certificate(app: GuacamoleApp, learned_fingerprint: str | None) -> dict[str, str]:
    """How guacd trusts the RDP host's certificate: pinned, learned once (by the broker), or the system's CAs.

    Never ``ignore-cert`` and never guacd's own ``cert-tofu`` (it would trust silently, per guacd host). The
    security layer is always stated and always TLS-based: FreeRDP checks a certificate only in a TLS handshake,
    and guacd's default ``any`` would let the host choose standard RDP security, with no certificate at all.
    """
    security: dict[str, str] = {"security": app.security or "tls"}
    if app.cert_fingerprints:
        return security | {"cert-fingerprints": ",".join(app.cert_fingerprints)}
    if app.cert_trust_first_use:
        if learned_fingerprint is None:
            raise PolicyError(f"app {app.id!r} trusts its host on first use: the broker must learn its certificate")
        return security | {"cert-fingerprints": learned_fingerprint}
    return security
