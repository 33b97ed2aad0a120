"""Durations, destinations, round trips, and the display rules' fixed shape."""

from dataclasses import fields
from datetime import timedelta

import pytest

from policy import dump_policy, load_default_policy, load_policy
from policy.rules import DisplayRules
from policy.values import format_duration, parse_destination, parse_duration


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("15m", timedelta(minutes=15)),
        ("8h", timedelta(hours=8)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_duration_reads_and_writes_back_the_same_text(text: str, length: timedelta) -> None:
    assert parse_duration(text) == length
    assert format_duration(length) == text


def test_destination_accepts_a_bare_address_as_one_host() -> None:
    assert str(parse_destination("10.77.0.1")) == "10.77.0.1/32"
    assert str(parse_destination("fd00::1 443/tcp")) == "fd00::1/128 443/tcp"


def test_display_rules_keep_their_fields_and_all_default_off() -> None:
    assert [field.name for field in fields(DisplayRules)] == [
        "clipboard_in",
        "clipboard_out",
        "download",
        "upload",
        "printing",
        "drive",
        "audio",
        "audio_input",
    ]
    assert not any(getattr(DisplayRules(), field.name) for field in fields(DisplayRules))


def test_default_policy_has_the_four_soho_groups_and_only_the_portal_in_scope() -> None:
    document = load_default_policy()
    assert list(document.groups) == ["SOHO-Agents", "SOHO-Supervisors", "SOHO-SecurityAdmins", "SOHO-HR"]
    assert document.app("customer-console").command == ("python", "-m", "desktop_broker.apps.customer_console")
    assert document.requirements("security_admin").require_totp is True
    scopes = {str(item) for group in document.groups.values() for item in group.network_scope}
    assert scopes == {"10.77.0.1/32 443/tcp"}


def test_dump_keeps_every_value_through_a_round_trip() -> None:
    document = load_default_policy()
    text = dump_policy(document)
    assert load_policy(text) == document
    assert "idle_timeout: 15m" in text and "10.77.0.1/32 443/tcp" in text
