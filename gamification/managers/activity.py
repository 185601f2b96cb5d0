"""Activity: what keeps a streak alive and fills the daily stats.

Three sources: a learner's message (staged into the storage app's message write, so both
are applied together), a learning item completed on a path (``progress``), and an explicit
``POST /api/gamification/activity`` (a practice session or an item, possibly reported late
by an offline client). Each is one Lua call: stats, XP, streak and achievements together.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from gamification import achievements, lua
from gamification.days import iso_week, local_date
from gamification.managers import engine
from mookti.ids import now_us
from mookti.redis import Write


class ActivityManager:
    def record(
        self,
        user: dict[str, Any],
        activity_type: str,
        *,
        occurred_at: int | None = None,
        minutes: int = 0,
        activity_id: str | None = None,
        now: int | None = None,
    ) -> dict[str, Any]:
        """Record one explicit activity; a repeated ``activity_id`` is counted once."""
        now = now or now_us()
        moment = engine.check_past(occurred_at, now, "occurredAt")
        tz_name = user.get("timezone") or "UTC"
        items = 1 if activity_type == "item" else 0
        day, act = engine.activity_part(
            moment,
            tz_name,
            activity_type,
            xp=engine.xp_for(activity_type),
            seconds=minutes * 60,
            items=items,
            activity_id=activity_id or "",
        )
        outcome = engine.run(lua.RECORD_ACTIVITY, user["id"], now, day, iso_week(moment), [], act=act)
        if not outcome.duplicate:
            engine.publish(outcome, tz_name=tz_name, now=now)
        return self._result(outcome, tz_name, now)

    @staticmethod
    def _result(outcome: engine.Outcome, tz_name: str, now: int) -> dict[str, Any]:
        return {
            "counted": not outcome.duplicate,
            "date": outcome.day,
            "xpAwarded": outcome.xp_awarded,
            "xpTotal": outcome.xp_total,
            "streak": outcome.streak_view(tz_name, now),
            "stats": outcome.stats,
            "achievements": [achievements.describe(a, now) for a in outcome.awarded],
        }

    def stage_messages(
        self, write: Write, user: dict[str, Any], messages: list[dict[str, Any]], now: int | None = None
    ) -> None:
        """Stage the learner's (role ``user``) messages as activity into the storage app's write.

        Messages older than the backfill window (an import of old chats) are not activity; a
        future ``createdAt`` counts as now. Messages of one local day are one activity.
        """
        now = now or now_us()
        tz_name = user.get("timezone") or "UTC"
        by_day: dict[date, list[int]] = defaultdict(list)
        for message in messages:
            if message.get("role") != "user":
                continue
            moment = min(int(message.get("createdAt") or now), now)
            if engine.within_backfill(moment, now):
                by_day[local_date(moment, tz_name)].append(moment)
        for moments in by_day.values():
            self._stage_day(write, user["id"], tz_name, moments, now)

    @staticmethod
    def _stage_day(write: Write, user_id: str, tz_name: str, moments: list[int], now: int) -> None:
        moment = max(moments)
        day, act = engine.activity_part(
            moment, tz_name, "message", xp=engine.xp_for("message") * len(moments), messages=len(moments)
        )
        week = iso_week(moment)
        script_keys = engine.script_keys(user_id, day)
        args = engine.script_args(now, day, week, act=act)
        index = write.step(lambda p: lua.RECORD_ACTIVITY(script_keys, args, client=p))

        def publish(replies: list[list[Any]]) -> None:
            try:
                outcome = engine.Outcome.decode(user_id, day, week, replies[index][0])
            except (IndexError, TypeError, ValueError):
                engine.logger.exception("unexpected activity reply for user %s", user_id)
                return
            outcome.stats_known = True
            engine.publish_after_response(outcome, tz_name=tz_name, now=now)

        write.on_commit(publish)


activity = ActivityManager()
