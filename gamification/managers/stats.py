"""Daily stats: one hash per user per local day (EXPIREAT after the retention), read by range."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from gamification import keys
from gamification.days import date_range, local_date
from gamification.managers import engine
from mookti.errors import Invalid
from mookti.ids import now_us
from mookti.redis import pipeline

DEFAULT_DAYS = 30
TOTALS = ("messages", "minutes", "xp", "itemsCompleted", "goalsCompleted")


class StatsManager:
    def queue(self, pipe: Any, user_id: str, first: date, last: date) -> list[date]:
        """Queue the reads of a range on ``pipe``; returns the days, for :meth:`build`."""
        days = date_range(first, last)
        for day in days:
            pipe.hgetall(keys.stats(user_id, day.isoformat()))
        return days

    @staticmethod
    def build(days: list[date], replies: list[dict[str, str]], tz_name: str) -> dict[str, Any]:
        rows = [engine.day_stats(day, raw) for day, raw in zip(days, replies, strict=True)]
        totals = {name: sum(row[name] for row in rows) for name in TOTALS}
        seconds = sum(int(raw.get("seconds", 0)) for raw in replies)
        totals["minutes"] = seconds // 60
        totals["activeDays"] = sum(1 for raw in replies if int(raw.get("activities", 0)) > 0)
        return {"from": days[0], "to": days[-1], "timezone": tz_name, "days": rows, "totals": totals}

    def range(
        self, user: dict[str, Any], first: date | None = None, last: date | None = None, *, now: int | None = None
    ) -> dict[str, Any]:
        """Every day of [first, last] (zeros for quiet days) and totals; default: the last 30 days."""
        tz_name = user.get("timezone") or "UTC"
        if last is None:
            last = max(local_date(now or now_us(), tz_name), first or date.min)
        if first is None:
            first = last - timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise Invalid("'from' is after 'to'.", {"from": ["Must not be after 'to'."]})
        limit = engine.config()["STATS_RETENTION_DAYS"]
        if (last - first).days + 1 > limit:
            raise Invalid(f"A range covers at most {limit} days.", {"from": [f"At most {limit} days before 'to'."]})
        pipe = pipeline()
        days = self.queue(pipe, user["id"], first, last)
        return self.build(days, pipe.execute(), tz_name)


stats = StatsManager()
