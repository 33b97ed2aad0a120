"""Launch tokens in guacamole-lite 1.2.0's envelope, and the parameters they may carry."""

import base64
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from desktop_broker.guacamole.parameters import LaunchParametersRefused, seat_connection, supervisor_view
from desktop_broker.guacamole.token import TokenKeyError, derive_token_key, mint_token, token_digest

KEY = derive_token_key(b"0123456789abcdef0123456789abcdef")
RDP = {
    "hostname": "10.20.0.15",
    "remote-app": "||agentapp",
    "disable-copy": "true",
    "disable-paste": "true",
    "enable-drive": "false",
    "enable-printing": "false",
    "security": "tls",
}


def open_envelope(token: str, key: bytes = KEY) -> bytes:
    """Decrypt as guacamole-lite does, returning the raw plaintext bytes."""
    envelope = json.loads(base64.b64decode(token))
    assert set(envelope) == {"iv", "value"}
    decryptor = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(envelope["iv"]))).decryptor()
    padded = decryptor.update(base64.b64decode(envelope["value"])) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def test_token_carries_connection_and_launch_id():
    token = mint_token(KEY, seat_connection("rdp", RDP), "L-1")
    document = json.loads(open_envelope(token))
    assert document == {"connection": {"type": "rdp", "settings": RDP}, "launch": "L-1"}


def test_non_ascii_values_are_escaped_so_an_ascii_decoder_reads_them():
    token = mint_token(KEY, seat_connection("rdp", {**RDP, "username": "张伟"}), "L-2")
    plaintext = open_envelope(token)
    assert plaintext.isascii()
    assert b"\\u5f20\\u4f1f" in plaintext
    assert json.loads(plaintext)["connection"]["settings"]["username"] == "张伟"


def test_each_token_has_a_fresh_iv():
    connection = seat_connection("rdp", RDP)
    first, second = (mint_token(KEY, connection, "L") for _ in range(2))
    assert json.loads(base64.b64decode(first))["iv"] != json.loads(base64.b64decode(second))["iv"]
    assert token_digest(first) != token_digest(second)


def test_token_key_follows_the_broker_secret():
    assert len(KEY) == 32
    assert derive_token_key(b"0123456789abcdef0123456789abcdef") == KEY
    assert derive_token_key(b"another secret of thirty-two byte") != KEY


@pytest.mark.parametrize("secret", [b"", b"short"])
def test_short_broker_secret_is_refused(secret):
    with pytest.raises(TokenKeyError):
        derive_token_key(secret)


def test_key_of_the_wrong_size_is_refused():
    with pytest.raises(TokenKeyError, match="32 bytes"):
        mint_token(KEY[:16], seat_connection("rdp", RDP), "L")


@pytest.mark.parametrize("missing", ["disable-copy", "disable-paste", "enable-drive", "enable-printing"])
def test_rdp_launch_without_an_explicit_dlp_switch_is_refused(missing):
    parameters = {name: value for name, value in RDP.items() if name != missing}
    with pytest.raises(LaunchParametersRefused, match=missing):
        seat_connection("rdp", parameters)


def test_vnc_launch_needs_only_the_clipboard_switches():
    connection = seat_connection("vnc", {"hostname": "10.20.0.16", "disable-copy": "true", "disable-paste": "true"})
    assert connection.protocol == "vnc"


@pytest.mark.parametrize(
    "protocol, parameters, reason",
    [
        ("ssh", RDP, "not one of"),
        ("rdp", {**RDP, "read-only": "true"}, "supervisor joins only"),
        ("rdp", {**RDP, "port": 3389}, "must be strings"),
        ("rdp", {**RDP, "hostname": ""}, "hostname"),
        ("rdp", {**RDP, "ignore-cert": "true"}, "certificate"),
        ("rdp", {**RDP, "cert-tofu": "true"}, "certificate"),
        ("rdp", {name: value for name, value in RDP.items() if name != "security"}, "security"),
        ("rdp", {**RDP, "security": "any"}, "may skip TLS"),
        ("rdp", {**RDP, "security": "rdp"}, "may skip TLS"),
    ],
)
def test_unsafe_seat_parameters_are_refused(protocol, parameters, reason):
    with pytest.raises(LaunchParametersRefused, match=reason):
        seat_connection(protocol, parameters)


def test_supervisor_view_is_a_read_only_join_that_cannot_paste():
    connection = supervisor_view("rdp", "$8d3c6e0a-1f7b-4d8e-9a51-3c0f6d2b7e11")
    assert connection.join == "$8d3c6e0a-1f7b-4d8e-9a51-3c0f6d2b7e11"
    assert connection.settings == {"read-only": "true", "disable-paste": "true"}
    with pytest.raises(LaunchParametersRefused):
        supervisor_view("rdp", "seat-07")
