"""A learner's whole gamification state in one call (the summary endpoint and the admin), and
the removal of all of it when the user is deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gamification import achievements, keys
from gamification.days import DAY_US, date_range, iso_week, local_date
from gamification.managers import engine
from gamification.managers.goals import decode_goal
from gamification.managers.progress import decode_progress
from gamification.managers.stats import stats
from mookti.errors import NotFound
from mookti.ids import from_us, now_us
from mookti.redis import Write, get_redis, pipeline
from storage.managers import users

COMPLETED_SHOWN = 10
PATHS_SHOWN = 50


def xp_view(totals: dict[str, str], week: str, week_xp: str | None) -> dict[str, Any]:
    return {
        "total": int(totals.get("xp", 0)),
        "week": week,
        "weekXp": int(week_xp or 0),
        "bySource": {name[3:]: int(value) for name, value in sorted(totals.items()) if name.startswith("xp:")},
    }


def achievements_view(awarded: dict[str, str]) -> list[dict[str, Any]]:
    """Every achievement, awarded ones with their time (awarded first, in definition order)."""
    found = [
        achievements.describe(a.id, int(awarded[a.id]) if a.id in awarded else None) for a in achievements.ACHIEVEMENTS
    ]
    return sorted(found, key=lambda a: a["awardedAt"] is None)


def achievements_of(user_id: str) -> list[dict[str, Any]]:
    """Every achievement with the user's awards (:func:`achievements_view`): one read."""
    return achievements_view(get_redis().hgetall(keys.achievements(user_id)))


def summary(user_id: str, days: int = 30, *, now: int | None = None) -> dict[str, Any]:
    """Streak, XP, achievements, the last ``days`` days of stats, goals and progress of a user."""
    now = now or now_us()
    user = users.get(user_id)
    if user is None:
        raise NotFound("user")
    tz_name = user.get("timezone") or "UTC"
    week = iso_week(now)
    today = local_date(now, tz_name)
    pipe = pipeline()
    pipe.hgetall(keys.streak(user_id))
    pipe.hgetall(keys.totals(user_id))
    pipe.hget(keys.weekly_xp(user_id), week)
    pipe.hgetall(keys.achievements(user_id))
    pipe.zrangebyscore(keys.goals(user_id), f"({now}", "+inf")
    pipe.zrevrange(keys.goals_completed(user_id), 0, COMPLETED_SHOWN - 1)
    pipe.zrevrange(keys.progress_paths(user_id), 0, PATHS_SHOWN - 1)
    day_list = stats.queue(pipe, user_id, today - timedelta(days=days - 1), today)
    streak_raw, totals, week_xp, awarded, active_ids, completed_ids, path_ids, *day_replies = pipe.execute()
    pipe = pipeline()
    for goal_id in active_ids + completed_ids:
        pipe.hgetall(keys.goal(user_id, goal_id))
    for path_id in path_ids:
        pipe.hgetall(keys.progress(user_id, path_id))
    loaded = pipe.execute() if len(pipe) else []
    goal_list = [g for g in (decode_goal(raw, now) for raw in loaded[: len(active_ids) + len(completed_ids)]) if g]
    paths = [p for p in map(decode_progress, loaded[len(active_ids) + len(completed_ids) :]) if p]
    return {
        "userId": user_id,
        "timezone": tz_name,
        "streak": engine.streak_view(streak_raw, tz_name, now),
        "xp": xp_view(totals, week, week_xp),
        "achievements": achievements_view(awarded),
        "stats": stats.build(day_list, day_replies, tz_name),
        "goals": {
            "active": [g for g in goal_list if g["status"] != "completed"],
            "completed": [g for g in goal_list if g["status"] == "completed"],
        },
        "progress": [{k: v for k, v in p.items() if k != "modules"} for p in paths],
    }


def delete_user(user_id: str, *, now: int | None = None) -> None:
    """Remove every gamification key of a user: leaderboard entries first (the index), then the
    user's own keys in one step."""
    own, weeks = user_keys(user_id, now=now)
    write = Write()
    for week in weeks:
        write.step(lambda p, w=week: p.zrem(keys.leaderboard(w), user_id))
    write.step(lambda p: p.unlink(*own))
    write.execute()


def user_keys(user_id: str, *, now: int | None = None) -> tuple[list[str], list[str]]:
    """(every key that may hold the user's state, the ISO weeks of their leaderboard entries).

    Daily stats keys are named by date, so every date that can still hold stats (the retention
    window, in any timezone) is listed without a scan. Also used by exports (``portability``)."""
    now = now or now_us()
    pipe = pipeline()
    pipe.hkeys(keys.weekly_xp(user_id))
    pipe.zrange(keys.goals(user_id), 0, -1)
    pipe.zrange(keys.goals_completed(user_id), 0, -1)
    pipe.zrange(keys.progress_paths(user_id), 0, -1)
    weeks, active_ids, completed_ids, path_ids = pipe.execute()
    retention = engine.config()["STATS_RETENTION_DAYS"]
    utc_today = from_us(now).date()
    first_day = from_us(now - (retention + 2) * DAY_US).date()
    own = [keys.stats(user_id, day.isoformat()) for day in date_range(first_day, utc_today + timedelta(days=2))]
    own += [keys.goal(user_id, goal_id) for goal_id in {*active_ids, *completed_ids}]
    own += [keys.progress(user_id, path_id) for path_id in path_ids]
    own += [keys.progress_awarded(user_id, path_id) for path_id in path_ids]
    own += [
        keys.goals(user_id),
        keys.goals_completed(user_id),
        keys.progress_paths(user_id),
        keys.streak(user_id),
        keys.streak_days(user_id),
        keys.totals(user_id),
        keys.weekly_xp(user_id),
        keys.achievements(user_id),
        keys.activity_ids(user_id),
    ]
    return own, weeks
