"""Compilation of an effective policy into X11, Guacamole and nftables parameters."""

from datetime import UTC, datetime

import pytest

from policy import (
    DisplayRules,
    PolicyError,
    compile_guacamole,
    compile_network_scope,
    compile_x11,
    evaluate,
    load_policy,
)
from policy.x11 import clipboard_flags
from tests.policy.documents import NOON, policy

AGENTS = """
Agents:
  apps: [console, billing, crm]
  display: {clipboard_in: true, download: true, upload: true, printing: true, audio: true, audio_input: true}
  watermark: {enabled: true, template: "{user} at {time}"}
  idle_timeout: 15m
  max_session: 8h
  network_scope: [10.77.0.1/32 443/tcp, 10.20.0.0/24, "fd00::/64 5060/udp", 10.30.0.0/16 icmp]
"""


@pytest.mark.parametrize(
    ("clipboard_in", "clipboard_out", "expected"),
    [
        (False, False, ("-nosel", "-noprimary", "-noclipboard", "-nosetclipboard", "-nosetprimary")),
        (True, False, ("-noprimary", "-noclipboard")),
        (False, True, ("-nosetclipboard", "-nosetprimary")),
        (True, True, ()),
    ],
)
def test_x11vnc_flags_close_exactly_the_clipboard_directions_not_allowed(
    clipboard_in: bool, clipboard_out: bool, expected: tuple[str, ...]
) -> None:
    assert clipboard_flags(DisplayRules(clipboard_in=clipboard_in, clipboard_out=clipboard_out)) == expected


def test_x11_seat_parameters_carry_argv_timeouts_and_watermark() -> None:
    effective = evaluate(policy(AGENTS), ["Agents"], NOON)
    params = compile_x11(effective, "console")
    assert params.argv == ("console-app", "--kiosk")
    assert params.x11vnc_clipboard_flags == ("-noprimary", "-noclipboard")
    assert (params.idle_timeout_seconds, params.max_session_seconds) == (900, 28800)
    assert params.watermark_text("li.wei", datetime(2026, 11, 25, 9, 5, tzinfo=UTC)) == "li.wei at 2026-11-25 09:05"
    assert params.view_only_supervision is True


def test_rdp_parameters_follow_the_display_rules() -> None:
    effective = evaluate(policy(AGENTS), ["Agents"], NOON)
    assert compile_guacamole(effective, "billing") == {
        "hostname": "10.20.0.10",
        "port": "3389",
        "remote-app": "||BILLING",
        "disable-copy": "true",
        "disable-paste": "false",
        "enable-drive": "false",
        "disable-download": "false",
        "disable-upload": "false",
        "enable-printing": "true",
        "disable-audio": "false",
        "enable-audio-input": "true",
        "security": "tls",
    }


def test_vnc_parameters_use_the_vnc_port_and_no_file_transfer() -> None:
    effective = evaluate(policy(AGENTS), ["Agents"], NOON)
    assert compile_guacamole(effective, "crm") == {
        "hostname": "10.20.0.11",
        "port": "5900",
        "disable-copy": "true",
        "disable-paste": "false",
        "enable-sftp": "false",
    }


def test_recording_and_drive_get_per_user_paths() -> None:
    document = policy("QA:\n  apps: [billing]\n  display: {drive: true}\n  recording: true\n")
    effective = evaluate(document, ["QA"], datetime(2026, 11, 25, 10, 0, 7, tzinfo=UTC))
    params = compile_guacamole(effective, "billing", user="he.lin")
    assert params["drive-path"] == "/var/lib/sohogw/drives/he.lin"
    assert params["recording-path"] == "/var/lib/sohogw/recordings"
    assert params["recording-name"] == "he.lin-billing-20261125T100007Z"
    with pytest.raises(PolicyError, match="needs the user's name"):
        compile_guacamole(effective, "billing")
    with pytest.raises(PolicyError, match="needs the user's name"):
        compile_guacamole(effective, "billing", user="../root")


def test_app_not_published_to_the_person_is_refused() -> None:
    effective = evaluate(policy("Agents:\n  apps: [console]\n"), ["Agents"], NOON)
    with pytest.raises(PolicyError, match="app 'billing' is not published to Agents"):
        compile_guacamole(effective, "billing")


def test_app_of_the_other_backend_is_refused() -> None:
    effective = evaluate(policy(AGENTS), ["Agents"], NOON)
    with pytest.raises(PolicyError, match="guacamole backend, not x11"):
        compile_x11(effective, "billing")
    with pytest.raises(PolicyError, match="x11 backend, not guacamole"):
        compile_guacamole(effective, effective.app("console"))


def test_network_scope_compiles_to_cidr_protocol_port_tuples() -> None:
    effective = evaluate(policy(AGENTS), ["Agents"], NOON)
    assert compile_network_scope(effective).allowed == (
        ("10.20.0.0/24", "tcp", None),
        ("10.20.0.0/24", "udp", None),
        ("10.20.0.0/24", "icmp", None),
        ("10.30.0.0/16", "icmp", None),
        ("10.77.0.1/32", "tcp", 443),
        ("fd00::/64", "udp", 5060),
    )
    nobody = evaluate(policy(AGENTS), ["Guests"], NOON)
    assert compile_network_scope(nobody).allowed == ()


RDP_APPS = """\
version: 1
apps:
  - id: pinned
    title: Pinned
    backend: guacamole
    protocol: rdp
    host: rds.example
    username: "{user}"
    cert_fingerprints: ["SHA256:A259CBEBAE8585F4FAFD4A55E481C7FCE95800EC87F3CE52227599E59617338B"]
  - {id: learned, title: Learned, backend: guacamole, protocol: rdp, host: rds.example, cert_trust_first_use: true}
  - {id: verified, title: Verified, backend: guacamole, protocol: rdp, host: rds.example}
groups:
  Agents: {apps: [pinned, learned, verified], recording: true}
"""
FINGERPRINT = "sha256:a2:59:cb:eb:ae:85:85:f4:fa:fd:4a:55:e4:81:c7:fc:e9:58:00:ec:87:f3:ce:52:22:75:99:e5:96:17:33:8b"


def test_rdp_certificate_trust_is_pinned_learned_or_verified_and_never_ignored() -> None:
    effective = evaluate(load_policy(RDP_APPS), ["Agents"], NOON)
    pinned = compile_guacamole(effective, "pinned", user="li.wei")
    assert (pinned["cert-fingerprints"], pinned["username"]) == (FINGERPRINT, "li.wei")
    assert compile_guacamole(effective, "learned", learned_fingerprint=FINGERPRINT)["cert-fingerprints"] == FINGERPRINT
    with pytest.raises(PolicyError, match="must learn its certificate"):
        compile_guacamole(effective, "learned")
    with pytest.raises(PolicyError, match="needs the user's name"):
        compile_guacamole(effective, "pinned")
    verified = compile_guacamole(effective, "verified", user="li.wei")
    learned = compile_guacamole(effective, "learned", learned_fingerprint=FINGERPRINT)
    for params in (pinned, learned, verified):
        assert not {"ignore-cert", "cert-tofu"} & params.keys()
        # FreeRDP checks a certificate only in a TLS handshake: guacd's default "any" would allow none.
        assert params["security"] == "tls"
    assert "cert-fingerprints" not in verified


def test_recording_names_are_filled_per_launch_with_no_placeholder_left() -> None:
    effective = evaluate(load_policy(RDP_APPS), ["Agents"], NOON)
    first = compile_guacamole(effective, "verified", user="li.wei", recording_tag="a1b2")
    second = compile_guacamole(effective, "verified", user="li.wei", recording_tag="c3d4")
    assert first["recording-name"] == "li.wei-verified-20261125T120000Z-a1b2"
    assert first["recording-name"] != second["recording-name"]
    assert "$" not in first["recording-name"]
