"""Local days and ISO weeks: the calendar arithmetic, done in Python and handed to Lua.

A day is a calendar date in the learner's IANA timezone, so a 23- or 25-hour DST day is still
one day. Lua scripts never read a clock or a timezone: they get the day of the activity and
the UTC instants at which nearby local days start, and compare the stored last activity
against those instants (see ``gamification.lua``).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from mookti.ids import from_us, to_us

DAY_US = 24 * 3600 * 1_000_000


@lru_cache(maxsize=512)
def zone(name: str | None) -> zoneinfo.ZoneInfo:
    """The user's zone; an unknown or empty name (old data) falls back to UTC."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def local_date(moment_us: int, tz_name: str | None) -> date:
    return from_us(moment_us).astimezone(zone(tz_name)).date()


def day_start_us(day: date, tz_name: str | None) -> int:
    """The instant the local day begins (a midnight skipped by DST maps to the jump's instant)."""
    return to_us(datetime.combine(day, time(0), tzinfo=zone(tz_name)).astimezone(UTC))


def day_end_us(day: date, tz_name: str | None) -> int:
    """The last microsecond of the local day."""
    return day_start_us(day + timedelta(days=1), tz_name) - 1


def day_window(moment_us: int, tz_name: str | None, back: int, forward: int) -> tuple[date, list[int], list[int]]:
    """The local day of ``moment_us`` plus the starts of the days around it.

    ``starts_back[i]`` is where day ``d - i`` begins (``i = 0 .. back - 1``), ``starts_forward[i]``
    where day ``d + 1 + i`` begins.
    """
    day = local_date(moment_us, tz_name)
    starts_back = [day_start_us(day - timedelta(days=i), tz_name) for i in range(back)]
    starts_forward = [day_start_us(day + timedelta(days=1 + i), tz_name) for i in range(forward)]
    return day, starts_back, starts_forward


def iso_week(moment_us: int) -> str:
    """The ISO week (Monday 00:00 UTC) of an instant: ``2025-W07``."""
    year, week, _ = from_us(moment_us).isocalendar()
    return f"{year}-W{week:02d}"


def week_start(week: str) -> datetime:
    """Monday 00:00 UTC of an ISO week label; ValueError if it is not one."""
    year, _, number = week.partition("-W")
    return datetime.fromisocalendar(int(year), int(number), 1).replace(tzinfo=UTC)


def date_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
