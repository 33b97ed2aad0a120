"""Whether a moment falls inside a person's shifts, and when the current shift ends.

Windows are local wall-clock times in their own IANA zone; every comparison is done in UTC so
DST changes give shifts their real length (a 22:00-06:00 night shift lasts 7 hours on the night
clocks spring forward). A start or end inside the skipped hour is read with the offset in force
before the change (PEP 495 `fold=0`), i.e. it moves one hour later on the wall clock; inside the
repeated autumn hour it is the first occurrence.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from policy.effective import EffectivePolicy
from policy.errors import PolicyError
from policy.schema import WEEKDAYS, ShiftWindow

_LOOK_BACK = timedelta(days=2)
_LOOK_AHEAD = timedelta(days=8)


@dataclass(frozen=True, slots=True)
class ShiftStatus:
    inside: bool
    """True when `now` is inside a shift window, or when no group restricts the time."""
    restricted: bool
    """False when none of the person's groups sets shifts."""
    ends_at: datetime | None = None
    """UTC end of the current shift, following windows that overlap or touch it."""
    next_starts_at: datetime | None = None
    """UTC start of the next shift when outside one (within the coming week)."""


def occurrences(window: ShiftWindow, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The window's (start, end) UTC intervals that begin on local days between `start` and `end`."""
    zone = ZoneInfo(window.time_zone)
    day = start.astimezone(zone).date()
    last: date = end.astimezone(zone).date()
    intervals = []
    while day <= last:
        if WEEKDAYS[day.weekday()] in window.days:
            begins = datetime.combine(day, window.start, tzinfo=zone)
            end_day = day if window.end > window.start else day + timedelta(days=1)
            ends = datetime.combine(end_day, window.end, tzinfo=zone)
            intervals.append((begins.astimezone(UTC), ends.astimezone(UTC)))
        day += timedelta(days=1)
    return intervals


def in_shift(effective: EffectivePolicy, now: datetime) -> ShiftStatus:
    """Is `now` inside any of the person's shift windows (the union of all their groups' windows)?"""
    if now.tzinfo is None:
        raise PolicyError("in_shift needs a time-zone-aware 'now'")
    if not effective.shifts:
        return ShiftStatus(inside=True, restricted=False)
    now = now.astimezone(UTC)
    intervals = sorted(
        interval
        for shift in effective.shifts
        for interval in occurrences(shift.window, now - _LOOK_BACK, now + _LOOK_AHEAD)
    )
    current = [interval for interval in intervals if interval[0] <= now < interval[1]]
    if not current:
        upcoming = [begins for begins, _ in intervals if begins > now]
        return ShiftStatus(inside=False, restricted=True, next_starts_at=min(upcoming, default=None))
    ends_at = max(ends for _, ends in current)
    for begins, ends in intervals:
        if begins <= ends_at < ends:
            ends_at = ends
    return ShiftStatus(inside=True, restricted=True, ends_at=ends_at)
