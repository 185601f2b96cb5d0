"""What every gamification change shares: the Lua call's keys and arguments, its decoded
outcome, and the one place its live events and leaderboard entry are published.

Scripts decide what changed (a new streak day, XP, an achievement), so the derived events are
published right after the change is applied, in one write with the leaderboard entry: ZADD GT
of the learner's weekly XP (an absolute, monotonic total), so a late or repeated update never
lowers a score and the next change repairs a missed one.
"""

from __future__ import annotations

import json
import logging
import threading
import time as time_module
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from django.conf import settings

from gamification import achievements, keys
from gamification.days import DAY_US, day_window, local_date, week_start
from mookti import events
from mookti.errors import Invalid, RateLimited
from mookti.ids import iso, new_id, now_us
from mookti.redis import REDIS_ERRORS, LuaScript, Write, get_redis, register_script

logger = logging.getLogger(__name__)

# Active days kept in the streak-days ZSET before the oldest are folded into the base (more
# than the backfill window, so late activity always lands after the base: see streak_days_kept).
STREAK_DAYS_KEPT = 60
# Clock skew tolerated on a client's occurredAt / updatedAt before it counts as "in the future".
FUTURE_SKEW_US = 60 * 1_000_000
CAS_ATTEMPTS = 8
# Tries (with 0.2 s doubling pauses) to publish events staged after the response.
BACKGROUND_ATTEMPTS = 5
# The streak fields a script reports (``out.streak``) that ``streak_view`` reads.
STREAK_FIELDS = ("current", "longest", "freezes", "lastAt")

WRITE_WINDOW_US = 60 * 1_000_000
# KEYS[1] a learner's recent gamification writes (ZSET by time); ARGV now, window start, a unique
# member. Records one write and forgets those older than the window (no TTL: the key only changes
# when the learner writes).
COUNT_WRITE = register_script(
    """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
return 1
"""
)


def config() -> dict[str, Any]:
    return settings.MOOKTI_GAMIFICATION


def streak_days_kept() -> int:
    return max(STREAK_DAYS_KEPT, config()["BACKFILL_DAYS"] + config()["FREEZE_MAX"] + 10)


def xp_for(activity_type: str) -> int:
    return int(config()["XP"].get(activity_type, 0))


def check_past(moment: int | None, now: int, field_name: str, *, bounded: bool = True) -> int:
    """A client's timestamp: not in the future; with ``bounded``, not older than the backfill window."""
    if moment is None:
        return now
    if moment > now + FUTURE_SKEW_US:
        raise Invalid(f"{field_name} is in the future.", {field_name: ["Must not be in the future."]})
    days = config()["BACKFILL_DAYS"]
    if bounded and moment < now - days * DAY_US:
        raise Invalid(
            f"{field_name} is more than {days} days ago.", {field_name: [f"Must be within the last {days} days."]}
        )
    return min(moment, now)


def within_backfill(moment: int, now: int) -> bool:
    return now - config()["BACKFILL_DAYS"] * DAY_US <= moment <= now + FUTURE_SKEW_US


def script_keys(user_id: str, day: date, *extra: str) -> list[str]:
    """The fixed key layout of ``gamification.lua`` (KEYS[1..7]) plus a script's own keys."""
    return [
        keys.streak(user_id),
        keys.streak_days(user_id),
        keys.stats(user_id, day.isoformat()),
        keys.totals(user_id),
        keys.weekly_xp(user_id),
        keys.achievements(user_id),
        keys.activity_ids(user_id),
        *extra,
    ]


def stats_expire_at(day: date) -> int:
    """Epoch seconds when a day's stats expire: retention days after the day (plus a day of slack)."""
    keep_until = day + timedelta(days=config()["STATS_RETENTION_DAYS"] + 1)
    return int(datetime.combine(keep_until, time(0), tzinfo=UTC).timestamp())


def script_args(now: int, day: date, week: str, **parts: Any) -> list[str]:
    cfg = config()
    args = {
        "now": str(now),
        "week": week,
        "statsExpireAt": stats_expire_at(day),
        "rules": achievements.rules(),
        "earnEvery": cfg["FREEZE_EARN_EVERY"],
        "maxFreezes": cfg["FREEZE_MAX"],
        "keep": streak_days_kept(),
        "goalXpPerDay": cfg["GOAL_XP_PER_DAY"],
        "seenSince": str(now - (cfg["BACKFILL_DAYS"] + 2) * DAY_US),
        "limits": {
            "items": cfg["DAILY_ITEMS"],
            "seconds": cfg["DAILY_MINUTES"] * 60,
            "activities": cfg["DAILY_ACTIVITIES"],
        },
        **parts,
    }
    return [orjson.dumps(args).decode()]  # json.dumps of the rules was a twentieth of a learner's post


def activity_part(
    moment: int,
    tz_name: str,
    activity_type: str,
    *,
    xp: int = 0,
    messages: int = 0,
    seconds: int = 0,
    items: int = 0,
    streak: bool = True,
    activity_id: str = "",
) -> tuple[date, dict[str, Any]]:
    """The ``act`` argument: the activity and the local-day boundaries around it."""
    cfg = config()
    day, starts_back, starts_forward = day_window(moment, tz_name, cfg["FREEZE_MAX"] + 2, cfg["BACKFILL_DAYS"] + 2)
    return day, {
        "type": activity_type,
        "xp": xp,
        "messages": messages,
        "seconds": seconds,
        "items": items,
        "streak": streak,
        "id": activity_id,
        "t": str(moment),
        "day": day.toordinal(),
        "back": [str(s) for s in starts_back],
        "fwd": [str(s) for s in starts_forward],
    }


@dataclass
class Outcome:
    """A script's decoded answer, for one user, day and week."""

    user_id: str
    day: date
    week: str
    raw: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # A learner's messages: their ``message.created`` events already say that the day's counters
    # moved, so no ``stats.updated`` follows (``xp.awarded`` carries the new totals).
    stats_known: bool = False

    @classmethod
    def decode(cls, user_id: str, day: date, week: str, reply: str) -> Outcome:
        return cls(user_id, day, week, json.loads(reply))

    @property
    def conflict(self) -> bool:
        return bool(self.raw.get("conflict"))

    @property
    def duplicate(self) -> bool:
        return bool(self.raw.get("duplicate"))

    @property
    def full(self) -> bool:
        return bool(self.raw.get("full"))

    @property
    def xp_awarded(self) -> int:
        return int(self.raw.get("xp", {}).get("awarded", 0))

    @property
    def xp_total(self) -> int:
        return int(self.raw.get("xp", {}).get("total", 0))

    @property
    def week_xp(self) -> int:
        return int(self.raw.get("xp", {}).get("week", 0))

    @property
    def awarded(self) -> list[str]:
        found = self.raw.get("achievements") or []
        return list(found) if isinstance(found, list) else []  # cjson encodes an empty table as {}

    @property
    def streak(self) -> dict[str, Any] | None:
        return self.raw.get("streak")

    def streak_view(self, tz_name: str, now: int) -> dict[str, Any]:
        """The streak the script reported, as ``streak_view`` shows it."""
        reported = {k: str(v) for k, v in (self.streak or {}).items() if k in STREAK_FIELDS}
        return streak_view(reported, tz_name, now)

    @property
    def stats(self) -> dict[str, Any]:
        flat = self.raw.get("stats") or []
        return day_stats(self.day, dict(zip(flat[::2], flat[1::2], strict=True)) if isinstance(flat, list) else {})


def run(
    script: LuaScript, user_id: str, now: int, day: date, week: str, extra_keys: list[str], **parts: Any
) -> Outcome:
    """Call a script for ``user_id``: ``day`` names the stats key, ``week`` the weekly XP field."""
    reply = script(script_keys(user_id, day, *extra_keys), script_args(now, day, week, **parts))
    outcome = Outcome.decode(user_id, day, week, reply)
    if outcome.raw.get("limited"):
        raise daily_limit(outcome.raw["limited"], outcome.raw["limit"], day, parts, now)
    return outcome


def daily_limit(name: str, limit: Any, day: date, parts: dict[str, Any], now: int) -> RateLimited:
    """The 429 of a daily cap: retry when the learner's next local day starts."""
    act = parts.get("act") or parts.get("progress", {}).get("act") or {}
    next_day = int(act["fwd"][0]) if act.get("fwd") else now + DAY_US
    error = RateLimited(
        f"Daily limit of {int(limit)} {name} reached for {day.isoformat()}.", retry_after=(next_day - now) // 1_000_000
    )
    error.code = "rate_limit:gamification"
    error.fields = {"type" if name in config()["DAILY_ACTIVITIES"] else name: [f"At most {int(limit)} a day."]}
    return error


def check_write_rate(user_id: str, now: int | None = None) -> None:
    """A 429 once the learner made ``WRITES_PER_MINUTE`` gamification writes in the last minute
    (a read: a refused request writes nothing; :func:`count_write` records the accepted ones)."""
    now = now or now_us()
    limit = config()["WRITES_PER_MINUTE"]
    recent = get_redis().zrange(keys.write_rate(user_id), now - WRITE_WINDOW_US, "+inf", byscore=True, withscores=True)
    if len(recent) >= limit:
        frees_at = int(recent[-limit][1]) + WRITE_WINDOW_US
        error = RateLimited(f"At most {limit} gamification writes a minute.", retry_after=(frees_at - now) // 1_000_000)
        error.code = "rate_limit:gamification"
        raise error


def count_write(user_id: str, now: int | None = None) -> None:
    now = now or now_us()
    COUNT_WRITE(keys=[keys.write_rate(user_id)], args=[now, now - WRITE_WINDOW_US, new_id()])


def day_stats(day: date, raw: dict[str, str]) -> dict[str, Any]:
    """One day's stats in the API's shape (seconds are summed, minutes shown)."""
    return {
        "date": day.isoformat(),
        "messages": int(raw.get("messages", 0)),
        "minutes": int(raw.get("seconds", 0)) // 60,
        "xp": int(raw.get("xp", 0)),
        "itemsCompleted": int(raw.get("items", 0)),
        "goalsCompleted": int(raw.get("goals", 0)),
    }


def streak_json(view: dict[str, Any]) -> dict[str, Any]:
    """A :func:`streak_view` in the API's JSON shape (its events; the REST views' ``StreakOut`` gives
    the same, a test keeps them equal)."""
    return {**view, "lastActivity": iso(view["lastActivity"])}


def achievement_json(described: dict[str, Any]) -> dict[str, Any]:
    """An achievement (:func:`gamification.achievements.describe`) in the API's JSON shape."""
    return {**described, "awardedAt": iso(described["awardedAt"])}


def streak_view(raw: dict[str, str], tz_name: str, now: int) -> dict[str, Any]:
    """The stored streak as seen today in the user's timezone.

    ``alive``: today's activity would continue it (active today or yesterday, or the missed
    days in between are covered by the freezes held). A broken streak reads as current 0.
    """
    stored = int(raw.get("current", 0) or 0)
    freezes = int(raw.get("freezes", 0) or 0)
    last_at = int(raw["lastAt"]) if raw.get("lastAt") else None
    today = local_date(now, tz_name)
    last_date = local_date(last_at, tz_name) if last_at is not None else None
    missed = (today - last_date).days - 1 if last_date else None
    alive = stored > 0 and missed is not None and missed <= freezes
    return {
        "current": stored if alive else 0,
        "longest": int(raw.get("longest", 0) or 0),
        "freezes": freezes,
        "maxFreezes": config()["FREEZE_MAX"],
        "lastActivity": last_at,
        "lastActivityDate": last_date.isoformat() if last_date else None,
        "today": today.isoformat(),
        "timezone": tz_name,
        "alive": alive,
        "activeToday": missed is not None and missed < 0,
        "freezesNeeded": max(0, missed) if alive and missed is not None else 0,
    }


# A leaderboard score is the weekly XP and, below it, how early in the week it was reached:
# xp * TIE_SCALE + (TIE_SCALE - 1 - milliseconds since the week began). Equal XP ranks the one who
# got there first higher, ZADD GT keeps the first time a total was reached, and the whole stays an
# exact integer in a ZSET score (weekly XP below 2**23; 2**30 ms is 12 days, a week plus late reports).
TIE_SCALE = 2**30


def board_score(xp: int, week: str, reached_at: int) -> int:
    """The leaderboard score of ``xp`` weekly XP reached at ``reached_at`` (microseconds)."""
    elapsed = (reached_at - int(week_start(week).timestamp()) * 1_000_000) // 1000
    return xp * TIE_SCALE + (TIE_SCALE - 1 - min(max(elapsed, 0), TIE_SCALE - 1))


def board_xp(score: float | str) -> int:
    """The weekly XP of a leaderboard score."""
    return int(float(score)) // TIE_SCALE


def board_reached_at(score: float | str, week: str) -> int:
    """When (microseconds) the score's XP was reached."""
    elapsed = TIE_SCALE - 1 - int(float(score)) % TIE_SCALE
    return int(week_start(week).timestamp()) * 1_000_000 + elapsed * 1000


def publish(outcome: Outcome, *, tz_name: str, now: int) -> None:
    """Publish the outcome's events (and the leaderboard entry) in one write; never raises:
    the change is already applied, and the next change repairs a missed leaderboard entry."""
    try:
        _publish(outcome, tz_name=tz_name, now=now)
    except Exception:
        logger.exception("gamification events for user %s not published", outcome.user_id)


def _publish(outcome: Outcome, *, tz_name: str, now: int) -> None:
    write = Write()
    if outcome.xp_awarded > 0:
        board = keys.leaderboard(outcome.week)
        expire_at = week_start(outcome.week) + timedelta(weeks=config()["LEADERBOARD_WEEKS_KEPT"] + 1)

        def rank(p: Any) -> None:
            p.zadd(board, {outcome.user_id: board_score(outcome.week_xp, outcome.week, now)}, gt=True)
            p.expireat(board, int(expire_at.timestamp()))

        write.step(rank)
    for event_type, data in derived_events(outcome, tz_name, now) + outcome.events:
        events.stage(write, outcome.user_id, event_type, data)
    if write:
        write.execute()


def _publish_with_retries(outcome: Outcome, *, tz_name: str, now: int) -> None:
    """Off the request path there is time to ride out a short Redis outage (about 6 s)."""
    for attempt in range(BACKGROUND_ATTEMPTS):
        try:
            _publish(outcome, tz_name=tz_name, now=now)
            return
        except REDIS_ERRORS:
            if attempt + 1 == BACKGROUND_ATTEMPTS:
                logger.exception("gamification events for user %s not published", outcome.user_id)
                return
            time_module.sleep(0.2 * 2**attempt)
        except Exception:
            logger.exception("gamification events for user %s not published", outcome.user_id)
            return


_background: ThreadPoolExecutor | None = None
_background_lock = threading.Lock()


def publish_after_response(outcome: Outcome, *, tz_name: str, now: int) -> None:
    """:func:`publish` off the request path, for changes staged into another app's write (a
    learner's message): that request keeps its round-trip budget, and the events follow within
    milliseconds. One worker thread keeps each process's events in order; the executor is made
    on first use (after any fork) and Python waits for its queue at exit."""
    global _background
    with _background_lock:
        if _background is None:
            _background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gamification-events")
    _background.submit(_publish_with_retries, outcome, tz_name=tz_name, now=now)


def flush_background(timeout: float = 10.0) -> None:
    """Wait until the events handed to :func:`publish_after_response` are published."""
    if _background is not None:
        _background.submit(lambda: None).result(timeout)


def derived_events(outcome: Outcome, tz_name: str, now: int) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    streak = outcome.streak
    if streak and streak.get("changed"):
        found.append(("streak.updated", streak_json(outcome.streak_view(tz_name, now))))
    stats = outcome.stats
    if not outcome.stats_known and any(
        stats[name] for name in ("messages", "minutes", "xp", "itemsCompleted", "goalsCompleted")
    ):
        found.append(("stats.updated", stats))
    if outcome.xp_awarded:
        found.append(
            (
                "xp.awarded",
                {
                    "amount": outcome.xp_awarded,
                    "total": outcome.xp_total,
                    "week": outcome.week,
                    "weekXp": outcome.week_xp,
                },
            )
        )
    for achievement_id in outcome.awarded:
        found.append(("achievement.awarded", achievement_json(achievements.describe(achievement_id, now))))
    return found
