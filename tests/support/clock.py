"""A clock tests can move: real time plus an offset, given to the app as its one injected clock."""

from datetime import UTC, datetime, timedelta


class MovableClock:
    """Real time plus an offset the test moves forward: the gateway's one injected clock."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
