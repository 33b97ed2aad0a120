"""Shift windows: local times in IANA zones, crossing midnight, and DST change days."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from policy import evaluate, in_shift
from policy.shifts import occurrences
from tests.policy.documents import policy

NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _effective(time_zone: str, days: str, start: str, end: str):  # type: ignore[no-untyped-def]
    document = policy(
        f"Agents:\n  shifts:\n    - {{time_zone: {time_zone}, days: [{days}], start: '{start}', end: '{end}'}}\n"
    )
    return evaluate(document, ["Agents"], datetime(2026, 1, 1, tzinfo=UTC))


def test_night_shift_crossing_midnight_covers_the_early_morning_of_the_next_day() -> None:
    effective = _effective("Asia/Shanghai", "fri", "22:00", "06:00")
    saturday_early = datetime(2026, 11, 28, 5, 59, tzinfo=SHANGHAI)
    status = in_shift(effective, saturday_early)
    assert status.inside is True
    assert status.ends_at == datetime(2026, 11, 28, 6, 0, tzinfo=SHANGHAI)
    assert in_shift(effective, datetime(2026, 11, 28, 6, 0, tzinfo=SHANGHAI)).inside is False
    assert in_shift(effective, datetime(2026, 11, 27, 21, 59, tzinfo=SHANGHAI)).inside is False


def test_weekday_of_a_night_shift_is_the_day_it_starts() -> None:
    effective = _effective("Asia/Shanghai", "fri", "22:00", "06:00")
    friday_early = datetime(2026, 11, 27, 2, 0, tzinfo=SHANGHAI)
    status = in_shift(effective, friday_early)
    assert status.inside is False
    assert status.next_starts_at == datetime(2026, 11, 27, 22, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("zone", "night", "hours"),
    [
        ("America/New_York", datetime(2026, 3, 7), 7),  # clocks spring forward 02:00 -> 03:00 on 8 March
        ("America/New_York", datetime(2026, 10, 31), 9),  # clocks fall back 02:00 -> 01:00 on 1 November
        ("Asia/Shanghai", datetime(2026, 3, 7), 8),  # no DST in China since 1991: the US change is irrelevant
        ("Asia/Shanghai", datetime(1991, 4, 13), 7),  # China's last DST began 14 April 1991
        ("Asia/Shanghai", datetime(1991, 9, 14), 9),  # ... and ended 15 September 1991
    ],
)
def test_night_shift_over_a_dst_change_lasts_its_real_length(zone: str, night: datetime, hours: int) -> None:
    effective = _effective(zone, "mon,tue,wed,thu,fri,sat,sun", "22:00", "06:00")
    starts = night.replace(hour=22, tzinfo=ZoneInfo(zone))
    status = in_shift(effective, starts + timedelta(minutes=1))
    assert status.inside is True
    assert status.ends_at is not None
    assert status.ends_at - starts.astimezone(UTC) == timedelta(hours=hours)
    assert status.ends_at.astimezone(ZoneInfo(zone)).hour == 6


def test_shift_starting_in_the_skipped_hour_starts_one_wall_clock_hour_later() -> None:
    effective = _effective("America/New_York", "sun", "02:30", "10:00")
    (window,) = occurrences(
        effective.shifts[0].window,
        datetime(2026, 3, 8, 12, tzinfo=UTC),
        datetime(2026, 3, 8, 12, tzinfo=UTC),
    )
    assert window[0].astimezone(NEW_YORK) == datetime(2026, 3, 8, 3, 30, tzinfo=NEW_YORK)
    assert in_shift(effective, datetime(2026, 3, 8, 3, 15, tzinfo=NEW_YORK)).inside is False
    assert in_shift(effective, datetime(2026, 3, 8, 3, 45, tzinfo=NEW_YORK)).inside is True


def test_shift_is_checked_in_its_own_zone_whatever_zone_now_carries() -> None:
    effective = _effective("Asia/Shanghai", "wed", "08:00", "17:00")
    new_york_evening = datetime(2026, 11, 24, 20, 30, tzinfo=NEW_YORK)  # Wednesday 09:30 in Shanghai
    assert in_shift(effective, new_york_evening).inside is True


def test_touching_windows_of_several_groups_make_one_continuous_shift() -> None:
    document = policy(
        """
        Day:
          shifts: [{time_zone: Asia/Shanghai, days: [wed], start: '08:00', end: '17:00'}]
        Evening:
          shifts: [{time_zone: Asia/Shanghai, days: [wed], start: '16:00', end: '23:00'}]
        """
    )
    effective = evaluate(document, ["Day", "Evening"], datetime(2026, 1, 1, tzinfo=UTC))
    status = in_shift(effective, datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI))
    assert status.ends_at == datetime(2026, 11, 25, 23, 0, tzinfo=SHANGHAI)


def test_group_without_shifts_adds_no_restriction_and_lifts_none() -> None:
    document = policy(
        """
        Day:
          shifts: [{time_zone: UTC, days: [wed], start: '08:00', end: '17:00'}]
        Anytime:
          roles: [supervisor]
        """
    )
    anytime = evaluate(document, ["Anytime"], datetime(2026, 1, 1, tzinfo=UTC))
    assert in_shift(anytime, datetime(2026, 11, 25, 3, tzinfo=UTC)).restricted is False
    both = evaluate(document, ["Day", "Anytime"], datetime(2026, 1, 1, tzinfo=UTC))
    assert in_shift(both, datetime(2026, 11, 25, 3, tzinfo=UTC)).inside is False
    assert both.explain("shifts") == "Day: wed 08:00-17:00 UTC"
