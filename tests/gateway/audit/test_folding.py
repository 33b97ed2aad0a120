"""The tally behind folded refusals: one row per key per window, the next row carrying what was folded."""

from datetime import UTC, datetime, timedelta

from gateway.audit.folding import FOLD_WINDOW, RefusalFolder, RefusalKey

START = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
LOCAL = RefusalKey("proxy.forwarding_ignored", "127.0.0.1", "proxy_secret_missing")
OTHER_PEER = RefusalKey("proxy.forwarding_ignored", "10.0.0.9", "proxy_secret_missing")


def test_the_next_row_of_a_key_carries_the_refusals_folded_since_its_last_row() -> None:
    folder = RefusalFolder()
    first = folder.refusal(LOCAL, "/login", {"n": 0}, START)
    folded = [folder.refusal(LOCAL, "/login", {"n": i}, START + timedelta(seconds=i)) for i in range(1, 60)]
    other = folder.refusal(OTHER_PEER, "/login", {}, START + timedelta(seconds=1))
    after_window = folder.refusal(LOCAL, "/agent", {"n": 60}, START + FOLD_WINDOW)
    assert first is not None and first.requests == 1
    assert folded == [None] * 59
    assert other is not None and other.requests == 1  # another peer is not hidden behind the first
    assert after_window is not None and (after_window.requests, after_window.target) == (60, "/agent")


def test_a_count_left_when_the_refusals_stop_is_due_after_its_window_and_taken_once() -> None:
    folder = RefusalFolder()
    folder.refusal(LOCAL, "/login", {}, START)
    folder.refusal(LOCAL, "/vpn", {"last": True}, START + timedelta(seconds=5))
    folder.refusal(OTHER_PEER, "/login", {}, START)
    assert folder.due(START + timedelta(seconds=30)) == []
    [due] = folder.due(START + FOLD_WINDOW)
    assert (due.key, due.requests, due.target, due.detail) == (LOCAL, 1, "/vpn", {"last": True})
    assert folder.due(START + 2 * FOLD_WINDOW) == []
    assert folder.refusal(LOCAL, "/login", {}, START + 2 * FOLD_WINDOW) is not None  # a fresh window, a fresh row


def test_at_shutdown_every_count_is_due_whatever_its_window() -> None:
    folder = RefusalFolder()
    folder.refusal(LOCAL, "/login", {}, START)
    folder.refusal(LOCAL, "/login", {}, START + timedelta(seconds=1))
    assert [row.requests for row in folder.due(START + timedelta(seconds=2), everything=True)] == [1]
