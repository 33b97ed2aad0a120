"""The launch gate: one redemption per launch, in time, with the exact token minted."""

from datetime import UTC, datetime, timedelta

import pytest

from desktop_broker.guacamole.gate import LaunchGate, LaunchMode, LaunchRefused, MemoryLaunchStore
from desktop_broker.guacamole.token import derive_token_key, token_digest

KEY = derive_token_key(b"0123456789abcdef0123456789abcdef")
PARAMETERS = {
    "hostname": "10.20.0.15",
    "disable-copy": "true",
    "disable-paste": "true",
    "enable-drive": "false",
    "enable-printing": "false",
    "security": "tls",
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(clock: Clock) -> LaunchGate:
    return LaunchGate(KEY, MemoryLaunchStore(), clock, lifetime=timedelta(seconds=30))


def issue(gate: LaunchGate):
    return gate.issue_seat_launch(user="agent0042", seat="seat-07", protocol="rdp", parameters=PARAMETERS)


def test_launch_is_redeemed_once_for_its_user_and_seat(gate):
    issued = issue(gate)
    launch = gate.redeem(issued.launch_id, token_digest(issued.token))
    assert launch.redemption() == {
        "launch_id": issued.launch_id,
        "user": "agent0042",
        "seat": "seat-07",
        "mode": "interactive",
    }


def test_second_redemption_is_refused(gate):
    issued = issue(gate)
    gate.redeem(issued.launch_id, token_digest(issued.token))
    with pytest.raises(LaunchRefused, match="already used"):
        gate.redeem(issued.launch_id, token_digest(issued.token))


def test_unknown_launch_is_refused(gate):
    with pytest.raises(LaunchRefused, match="unknown"):
        gate.redeem("never-issued", "0" * 64)


def test_launch_expires_after_its_lifetime(gate, clock):
    issued = issue(gate)
    assert issued.expires_at == clock.now + timedelta(seconds=30)
    clock.now += timedelta(seconds=30)
    with pytest.raises(LaunchRefused, match="expired"):
        gate.redeem(issued.launch_id, token_digest(issued.token))


def test_launch_redeemed_just_before_expiry_is_granted(gate, clock):
    issued = issue(gate)
    clock.now += timedelta(seconds=29)
    assert gate.redeem(issued.launch_id, token_digest(issued.token)).user == "agent0042"


def test_altered_token_is_refused_and_burns_the_launch(gate):
    issued = issue(gate)
    with pytest.raises(LaunchRefused, match="does not match"):
        gate.redeem(issued.launch_id, token_digest(issued.token[:-4] + "AAA="))
    with pytest.raises(LaunchRefused, match="already used"):
        gate.redeem(issued.launch_id, token_digest(issued.token))


def test_supervisor_view_is_redeemed_in_view_mode(gate):
    issued = gate.issue_supervisor_view(supervisor="sup01", seat="seat-07", protocol="rdp", connection_id="$abc")
    launch = gate.redeem(issued.launch_id, token_digest(issued.token))
    assert (launch.user, launch.mode) == ("sup01", LaunchMode.VIEW)


def test_expired_unredeemed_launches_are_forgotten(clock):
    store = MemoryLaunchStore()
    gate = LaunchGate(KEY, store, clock)
    stale = issue(gate)
    clock.now += timedelta(minutes=5)
    issue(gate)
    assert store.take(stale.launch_id) is None
