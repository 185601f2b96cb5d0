"""Every Redis key name of the gamification app, and nothing else builds them.

A learner's gamification state lives in the learner's own hash slot (``user:{uid}:...``), so
an activity (streak, daily stats, XP, achievements) or a goal completion (goal, goal indexes,
XP) is one Lua call even on Redis Cluster. Goals are therefore ``user:{uid}:goal:{gid}``
rather than the seed's ``goal:{gid}``: every goal request knows its owner (others' goals are
404s anyway), and completing a goal, moving it between indexes and awarding its XP is atomic.
Only the weekly leaderboard is global (one slot per ISO week).
Ids and dates are validated before they reach these functions.
"""

from __future__ import annotations

from mookti.redis import key


def streak(user_id: str) -> str:
    """HASH current, longest, freezes, lastAt (us), lastDay, base* (the folded-in older days)."""
    return key(f"user:{{{user_id}}}:streak")


def streak_days(user_id: str) -> str:
    """ZSET the recent active days (day numbers, member = score) the streak is replayed from."""
    return key(f"user:{{{user_id}}}:streak-days")


def goals(user_id: str) -> str:
    """ZSET ids of active goals by dueDate (us; +inf without one). Past due = expired."""
    return key(f"user:{{{user_id}}}:goals")


def goals_completed(user_id: str) -> str:
    """ZSET ids of completed goals by completedAt."""
    return key(f"user:{{{user_id}}}:goals-completed")


def goal(user_id: str, goal_id: str) -> str:
    """HASH id, userId, title, description, progress, current, target, dueDate, status, ..."""
    return key(f"user:{{{user_id}}}:goal:{goal_id}")


def stats(user_id: str, day: str) -> str:
    """HASH messages, seconds, xp, items, activities, goals of one local day (YYYY-MM-DD); EXPIREAT."""
    return key(f"user:{{{user_id}}}:stats:{day}")


def totals(user_id: str) -> str:
    """HASH lifetime counters: xp, xp:<source>, messages, seconds, items, goals, activities."""
    return key(f"user:{{{user_id}}}:totals")


def weekly_xp(user_id: str) -> str:
    """HASH ISO week (``2025-W07``) -> XP earned that week (the leaderboard's source of truth)."""
    return key(f"user:{{{user_id}}}:xp-weekly")


def achievements(user_id: str) -> str:
    """HASH achievement id -> awardedAt (us); HSETNX awards each once."""
    return key(f"user:{{{user_id}}}:achievements")


def activity_ids(user_id: str) -> str:
    """ZSET client activity ids by arrival (us), trimmed to the backfill window: idempotent retries."""
    return key(f"user:{{{user_id}}}:activity-ids")


def progress(user_id: str, path_id: str) -> str:
    """HASH pathId, modules (JSON), currentModule, currentNode, clientUpdatedAt, updatedAt, version."""
    return key(f"user:{{{user_id}}}:progress:{path_id}")


def progress_paths(user_id: str) -> str:
    """ZSET learning path ids by updatedAt."""
    return key(f"user:{{{user_id}}}:progress")


def progress_awarded(user_id: str, path_id: str) -> str:
    """SET ``module/node`` ever completed on a path: XP for an item is awarded once."""
    return key(f"user:{{{user_id}}}:progress:{path_id}:awarded")


def write_rate(user_id: str) -> str:
    """ZSET of the learner's gamification writes of the last minute, by time (the write rate limit)."""
    return key(f"user:{{{user_id}}}:gamification-writes")


def leaderboard(week: str) -> str:
    """ZSET user id -> XP of one ISO week (``2025-W07``, weeks start Monday 00:00 UTC)."""
    return key(f"leaderboard:weekly:{{{week}}}")
