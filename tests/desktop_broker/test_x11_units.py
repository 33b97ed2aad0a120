"""Pure parts of the X11 seat and the Customer Console: flag compilation, passwords, watermark text,
the call/verification rule and the call-state file."""

import json
from pathlib import Path

import pytest

from desktop_broker.apps.call_state import NO_CALL, CallState, read_call_state
from desktop_broker.apps.console_session import ConsoleSession
from desktop_broker.apps.customers import load_customers, masked_phone, verify_service_password
from desktop_broker.x11.spec import SeatPasswords, clipboard_flags
from policy.rules import DisplayRules

LI_WEI = "+8613800000001"
LI_WEI_PASSWORD = "314159"


def test_forbidden_clipboard_turns_off_every_selection_direction() -> None:
    flags = clipboard_flags(DisplayRules())
    assert {"-nosel", "-noprimary", "-noclipboard", "-nosetclipboard", "-nosetprimary"} <= set(flags)


def test_clipboard_out_only_sends_and_never_sets_the_seat_clipboard() -> None:
    flags = clipboard_flags(DisplayRules(clipboard_out=True))
    assert "-nosel" not in flags and "-noclipboard" not in flags
    assert flags[flags.index("-seldir") + 1] == "send" and "-nosetclipboard" in flags


def test_clipboard_in_only_receives_and_never_reads_the_seat_clipboard() -> None:
    flags = clipboard_flags(DisplayRules(clipboard_in=True))
    assert flags[flags.index("-seldir") + 1] == "recv" and "-noclipboard" in flags


def test_primary_selection_never_crosses_even_when_clipboard_is_allowed() -> None:
    flags = clipboard_flags(DisplayRules(clipboard_in=True, clipboard_out=True))
    assert flags == ["-noprimary", "-nosetprimary"]


def test_generated_passwords_are_distinct_eight_character_secrets() -> None:
    generated = [SeatPasswords.generate() for _ in range(50)]
    assert all(len(p.full_access) == 8 and len(p.view_only) == 8 for p in generated)
    assert len({p.full_access for p in generated} | {p.view_only for p in generated}) == 100


def test_passwd_file_puts_the_view_only_password_after_the_marker() -> None:
    text = SeatPasswords("fullpass", "viewonly").passwd_file_text()
    assert text.splitlines() == ["fullpass", "__BEGIN_VIEWONLY__", "viewonly"]


@pytest.mark.parametrize("full, view", [("short", "viewonly"), ("samesame", "samesame"), ("a\nbcdefg", "viewonly")])
def test_unusable_passwords_are_refused(full: str, view: str) -> None:
    with pytest.raises(ValueError):
        SeatPasswords(full, view)


def test_customer_data_appears_only_after_the_service_password_verifies() -> None:
    session = ConsoleSession(load_customers())
    session.call_started(LI_WEI)
    assert session.visible_customer() is None and session.status() == "on call"
    assert not session.verify("000000")
    assert session.visible_customer() is None
    assert session.verify(LI_WEI_PASSWORD)
    customer = session.visible_customer()
    assert customer is not None and customer.name == "Li Wei"


def test_customer_data_is_hidden_again_when_the_call_ends() -> None:
    session = ConsoleSession(load_customers())
    session.call_started(LI_WEI)
    session.verify(LI_WEI_PASSWORD)
    session.call_ended()
    assert session.visible_customer() is None and session.status() == "idle"
    session.call_started(LI_WEI)
    assert session.visible_customer() is None, "a new call must be verified again"


def test_three_wrong_passwords_lock_the_call_even_against_the_right_one() -> None:
    session = ConsoleSession(load_customers())
    session.call_started(LI_WEI)
    for _ in range(3):
        session.verify("999999")
    assert not session.verify(LI_WEI_PASSWORD)
    assert session.status() == "on call: locked"


def test_another_customers_password_does_not_unlock_the_caller() -> None:
    session = ConsoleSession(load_customers())
    session.call_started(LI_WEI)
    assert not session.verify("271828")  # Zhang Min's


def test_unknown_caller_never_shows_data() -> None:
    session = ConsoleSession(load_customers())
    session.call_started("+8613999999999")
    assert not session.verify(LI_WEI_PASSWORD)
    assert session.status() == "on call: unknown caller"


def test_stored_hashes_verify_only_the_right_password() -> None:
    customers = {c.id: c for c in load_customers()}
    assert verify_service_password(customers["c-1002"], "271828")
    assert not verify_service_password(customers["c-1002"], "271829")


def test_phone_numbers_are_masked_on_screen() -> None:
    assert masked_phone(LI_WEI) == "+86138****0001"


@pytest.mark.parametrize(
    "content, expected",
    [
        (json.dumps({"active": True, "caller": LI_WEI}), CallState(True, LI_WEI)),
        (json.dumps({"active": False, "caller": LI_WEI}), NO_CALL),
        (json.dumps({"active": "yes", "caller": LI_WEI}), NO_CALL),
        ("{not json", NO_CALL),
        (json.dumps([1, 2]), NO_CALL),
    ],
)
def test_call_state_file_fails_closed(tmp_path: Path, content: str, expected: CallState) -> None:
    path = tmp_path / "call.json"
    path.write_text(content)
    assert read_call_state(path) == expected


def test_missing_call_state_file_means_no_call(tmp_path: Path) -> None:
    assert read_call_state(tmp_path / "absent.json") == NO_CALL
