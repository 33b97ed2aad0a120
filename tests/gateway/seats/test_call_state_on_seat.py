"""The agent's real customer calls reach the Customer Console on their seat: a warm seat started with its own
call-state file before anyone held it, the broker feeding that file from the voice domain's call events.

Real seats (Xvfb, the Tk console as the seat's user, x11vnc); the console's window title is its state
("Customer Console - idle" / "- on call"), read on the seat's display with xdotool.
"""

import grp
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from desktop_broker.apps.call_state import CALL_STATE_ENV, read_call_state
from desktop_broker.x11.unix_accounts import SEAT_UIDS
from gateway.db import session_scope
from gateway.sessions.models import HomeSession, SessionState
from gateway.voice.platform import CustomerCallEvent, CustomerCallKind
from gateway.voice.service import request_callback
from gateway.voice.settings import VoiceSettings
from gateway.voice.sink import apply_event
from tests.desktop_broker.x11_fixtures import wait_for_window
from tests.gateway.seats.conftest import SeatPortal, launch, seat_of, seat_portal, seat_root
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session, wait_for

pytestmark = pytest.mark.e2e

LI_WEI = "+8613800000001"
"""A customer of the console's demo data (desktop_broker/apps/customers.json)."""
VOICE = VoiceSettings()


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[SeatPortal]:
    with (
        seat_root() as calls,
        seat_portal(tmp_path, db_url, engine, warm=1, call_state_root=calls / "calls") as running,
    ):
        yield running


@pytest.fixture
def agent1(portal: SeatPortal) -> Iterator[httpx.Client]:
    """Per test, like its portal (the folder's ``agent1`` lasts a module)."""
    with portal.signed_in("agent1") as client:
        yield client


def _session_id(portal: SeatPortal, login: str) -> str:
    with Session(portal.engine) as db:
        session = db.exec(
            select(HomeSession).where(HomeSession.login == login, HomeSession.state == SessionState.ACTIVE)
        ).one()
        return session.id


def _callback_leg(portal: SeatPortal, session_id: str, number: str = AGENT_NUMBER) -> str:
    """The session's nailed-up leg, as voice wants it at login (the number confirmed by its texted code)."""
    with session_scope(portal.engine) as db:
        session = db.get(HomeSession, session_id)
        assert session is not None
        confirmed_number(db, session.login, number, VOICE, portal.clock(), person_id=session.person_id)
        return request_callback(db, session, VOICE, actor="system", now=portal.clock()).id


def _customer_call(portal: SeatPortal, leg_id: str, kind: CustomerCallKind, caller: str = LI_WEI) -> None:
    """A call event through the voice domain's one entry point for adapter events, committed."""
    with session_scope(portal.engine) as db:
        assert apply_event(db, CustomerCallEvent(leg_id, kind, caller), VOICE, portal.clock())


def _readable_by(uid: int, gid: int, path: Path) -> bool:
    probe = subprocess.run(["cat", str(path)], user=uid, group=gid, extra_groups=[], capture_output=True, check=False)
    return probe.returncode == 0


def test_a_seat_started_warm_shows_its_holders_calls_and_hides_customer_data_after(
    portal: SeatPortal, agent1: httpx.Client
) -> None:
    wait_for(lambda: portal.broker.pool is not None and portal.broker.pool.count() == (0, 1), timeout=10)
    session_id = _session_id(portal, "agent1")
    leg_id = _callback_leg(portal, session_id)
    _customer_call(portal, leg_id, CustomerCallKind.ANSWERED)  # answered before the app is even opened

    assert launch(agent1).status_code == 200
    seat = seat_of(portal, "agent1")
    assert seat.call_state_file is not None
    environ = Path(f"/proc/{seat.process.app.pid}/environ").read_bytes().split(b"\0")
    assert f"{CALL_STATE_ENV}={seat.call_state_file}".encode() in environ  # fixed when the seat started warm
    wait_for_window(seat.process, "^Customer Console - on call$")

    _customer_call(portal, leg_id, CustomerCallKind.ENDED)
    wait_for_window(seat.process, "^Customer Console - idle$")
    _customer_call(portal, leg_id, CustomerCallKind.OFFERED, "+8613800000002")
    _customer_call(portal, leg_id, CustomerCallKind.ANSWERED, "+8613800000002")
    wait_for_window(seat.process, "^Customer Console - on call$")

    user = seat.process.user
    if os.geteuid() == 0:
        assert user.created
        assert _readable_by(user.uid, user.gid, seat.call_state_file)
        assert not _readable_by(65534, 65534, seat.call_state_file)  # nobody else, not even another seat
        state = seat.call_state_file.stat()
        assert (state.st_uid, state.st_gid, stat.S_IMODE(state.st_mode)) == (0, user.gid, 0o640)
        assert stat.S_IMODE(seat.call_state_file.parent.parent.stat().st_mode) == 0o711  # no listing the seats
        planted = seat.call_state_file.parent / "planted.json"
        touch = subprocess.run(["touch", str(planted)], user=user.uid, group=user.gid, extra_groups=[], check=False)
        assert touch.returncode != 0 and not planted.exists()  # the app cannot fake a call for itself


def test_another_agents_call_never_reaches_the_seat(portal: SeatPortal, agent1: httpx.Client) -> None:
    assert launch(agent1).status_code == 200
    seat = seat_of(portal, "agent1")
    wait_for_window(seat.process, "^Customer Console - idle$")
    with session_scope(portal.engine) as db:
        other = start_session(db, "agent2", portal.clock()).id
    _customer_call(portal, _callback_leg(portal, other, "+8613812345679"), CustomerCallKind.ANSWERED)
    portal.broker.feed_call_state()  # the reconcile pass's feed, run now rather than in up to 3 s
    assert seat.call_state_file is not None
    assert not read_call_state(seat.call_state_file).active
    wait_for_window(seat.process, "^Customer Console - idle$")


def test_the_call_state_directory_goes_with_the_seat(portal: SeatPortal, agent1: httpx.Client) -> None:
    assert launch(agent1).status_code == 200
    seat = seat_of(portal, "agent1")
    assert seat.call_state_file is not None and seat.call_state_file.parent.is_dir()
    assert portal.broker.pool is not None
    portal.broker.pool.release(seat.seat_id)
    assert not seat.call_state_file.parent.exists()


def test_a_starting_broker_removes_call_state_folders_no_seat_user_holds(portal: SeatPortal) -> None:
    """What a broker killed with `kill -9` left: a folder whose group id `useradd` may hand to a new seat user."""
    wait_for(lambda: portal.broker.pool is not None and portal.broker.pool.count() == (0, 1), timeout=10)
    calls = portal.broker.settings.call_state_root
    assert calls is not None
    (warm,) = calls.iterdir()
    taken = {group.gr_gid for group in grp.getgrall()}
    orphaned = calls / "seat-0123456789ab"
    orphaned.mkdir()
    os.chown(orphaned, 0, next(gid for gid in reversed(SEAT_UIDS) if gid not in taken))
    portal.broker.warm_up()
    assert not orphaned.exists()
    assert warm.is_dir(), "the warm seat's own folder went too"
