"""The wall's event stream over a real socket: a snapshot, then a diff when an agent changes state."""

import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from gateway.supervision.wall import diff, summary
from tests.gateway.supervision.conftest import SupervisedPortal, post_form, signed_in


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, object]]]:
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))


def test_wall_stream_sends_a_snapshot_then_the_agents_new_state(portal: SupervisedPortal) -> None:
    with (
        signed_in(portal, "agent1") as agent,
        signed_in(portal, "sup1") as supervisor,
        supervisor.stream("GET", "/supervision/wall/events", timeout=15) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _events(stream.iter_lines())
        kind, snapshot = next(events)
        assert kind == "snapshot"
        (row,) = snapshot["rows"]  # type: ignore[misc]
        assert (row["login"], row["state"], row["teams"]) == ("agent1", "offline", ["SOHO-Agents", "Team-North"])
        changed = threading.Thread(
            target=post_form, args=(agent, "/agent/work-state", "/agent/work-state"), kwargs={"state": "ready"}
        )
        changed.start()
        kind, update = next(events)
        changed.join()
    assert kind == "diff"
    assert [(r["login"], r["state"]) for r in update["upsert"]] == [("agent1", "ready")]  # type: ignore[union-attr]
    assert update["summary"]["ready"] == 1  # type: ignore[index]


def test_only_supervisors_may_open_the_wall(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1") as agent:
        assert agent.get("/supervision/wall/events").status_code == 403
        assert agent.get("/supervision/wall").status_code == 403
    with httpx.Client(base_url=portal.base_url) as anonymous:
        assert anonymous.get("/supervision/wall/events").status_code == 401


@pytest.mark.parametrize(
    ("old", "new", "changed", "removed"),
    [
        ({"a": {"s": 1}}, {"a": {"s": 1}}, [], []),
        ({"a": {"s": 1}}, {"a": {"s": 2}, "b": {"s": 1}}, [{"s": 2}, {"s": 1}], []),
        ({"a": {"s": 1}, "b": {"s": 1}}, {"b": {"s": 1}}, [], ["a"]),
    ],
)
def test_diff_sends_only_new_changed_and_removed_rows(
    old: dict[str, dict[str, object]], new: dict[str, dict[str, object]], changed: list[object], removed: list[str]
) -> None:
    assert diff(old, new) == (changed, removed)


def test_summary_counts_states_links_long_breaks_and_help() -> None:
    rows = {
        "a": {"state": "ready", "link": "good", "break_too_long": False, "help_since": "2026-12-06T10:00:00+00:00"},
        "b": {"state": "break", "link": "down", "break_too_long": True, "help_since": None},
        "c": {"state": "break", "link": "none", "break_too_long": False, "help_since": None},
    }
    expected = {"ready": 1, "break": 2, "total": 3, "link_down": 1, "break_too_long": 1, "help": 1}
    assert summary(rows) == expected  # type: ignore[arg-type]
