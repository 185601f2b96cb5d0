"""Streaks: read (is it alive today, in the user's timezone?) and the admin's outage repair."""

from __future__ import annotations

import logging
from typing import Any

from gamification import keys, lua
from gamification.days import iso_week, local_date
from gamification.managers import engine
from mookti.errors import Invalid, NotFound
from mookti.ids import iso, now_us
from mookti.redis import get_redis
from storage.managers import users

logger = logging.getLogger(__name__)
MAX_STREAK = 100_000


class StreakManager:
    def get(self, user: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
        raw = get_redis().hgetall(keys.streak(user["id"]))
        return engine.streak_view(raw, user.get("timezone") or "UTC", now or now_us())

    def restore(
        self,
        user_id: str,
        current: int,
        last_activity: int | None = None,
        *,
        restored_by: str = "admin",
        reason: str = "",
        now: int | None = None,
    ) -> dict[str, Any]:
        """Outage repair: make the streak ``current`` days long as of ``last_activity`` (default now).

        To bridge a day lost to an outage, pass the outage day as ``last_activity`` and the
        streak as it stood then: activity recorded after that day is replayed on top, so the
        learner continues from there. ``longest`` never decreases. Logged and published as a
        ``streak.restored`` event.
        """
        now = now or now_us()
        user = users.get(user_id)
        if user is None:
            raise NotFound("user")
        if not 1 <= current <= MAX_STREAK:
            raise Invalid("current must be a positive streak length.", {"current": [f"Use 1 to {MAX_STREAK}."]})
        last_activity = engine.check_past(last_activity, now, "lastActivity", bounded=False)
        tz_name = user.get("timezone") or "UTC"
        today = local_date(now, tz_name)
        restore = {
            "day": local_date(last_activity, tz_name).toordinal(),
            "current": current,
            "lastAt": str(last_activity),
        }
        outcome = engine.run(lua.RESTORE_STREAK, user_id, now, today, iso_week(now), [], restore=restore)
        view = self.get(user, now=now)
        outcome.events.append(
            (
                "streak.restored",
                {"current": current, "lastActivity": iso(last_activity), "restoredBy": restored_by, "reason": reason},
            )
        )
        engine.publish(outcome, tz_name=tz_name, now=now)
        logger.warning(
            "streak of user %s restored to %s as of %s by %s: %s",
            user_id,
            current,
            iso(last_activity),
            restored_by,
            reason,
        )
        return view


streaks = StreakManager()
