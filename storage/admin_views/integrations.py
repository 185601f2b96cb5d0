"""The admin's calls into the other parts: semantic search, the indexer, the vector store, gamification.

Kept in one module so the pages stay independent of how those parts spell their APIs. Imports
are inside the functions: the admin must load (and its entity pages work) without pulling in
an embedding model.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from storage.admin_views.common import BadInput, when
from storage.ids import now_us

SEARCH_KINDS = ("message", "document")
REINDEX_CONSEQUENCES = ["Every message and document of the user is embedded again and upserted to the vector store."]


def search(query: str, *, kinds: list[str], user_id: str | None, limit: int) -> list[dict[str, Any]]:
    raise NotImplementedError


def backends() -> dict[str, Any]:
    return {}


def indexer_status() -> dict[str, Any] | None:
    return None


def retry_dead_letters() -> str:
    raise NotImplementedError


def vector_stats() -> dict[str, Any] | None:
    return None


def reindex_user(user_id: str) -> str:
    raise NotImplementedError


# --- gamification --------------------------------------------------------------------------------
PANEL_DAYS = 14
MAX_STREAK = 100_000
MAX_REASON = 200


def gamification_panel(user_id: str) -> dict[str, Any] | None:
    """Streak, XP, achievements, the last two weeks, goals and progress (``gamification.managers.summary``)."""
    from gamification.managers import summary

    found = summary(user_id, days=PANEL_DAYS)
    days = found["stats"]["days"]
    busiest = max([d["xp"] for d in days] + [1])
    for day in days:
        day["bar"] = round(100 * day["xp"] / busiest)
    streak = found["streak"]
    streak["last"] = when(streak.get("lastActivity"))
    for group in found["goals"].values():
        for goal in group:
            _goal_display(goal)
    found["awarded"] = [a for a in found["achievements"] if a["awardedAt"]]
    for achievement in found["awarded"]:
        achievement["at"] = when(achievement["awardedAt"])
    for path in found["progress"]:
        path["updated"] = when(path.get("updatedAt"))
    return found


def _goal_display(goal: dict[str, Any]) -> dict[str, Any]:
    goal["percent"] = goal["progress"]
    goal["progress_text"] = f"{goal['current']} / {goal['target']}" if goal.get("target") else f"{goal['progress']}%"
    goal["due"] = when(goal.get("dueDate"))
    goal["completed"] = when(goal.get("completedAt"))
    return goal


def goals(user_id: str) -> list[dict[str, Any]]:
    """Every goal: active by due date, then expired, then completed."""
    from gamification.managers import goals as goal_manager

    return [_goal_display(g) for g in goal_manager.list(user_id, status="all", limit=500)]


def streak_state(user: dict[str, Any]) -> dict[str, Any]:
    from gamification.managers import streaks

    state = streaks.get(user)
    state["last"] = when(state.get("lastActivity"))
    return state


def parse_restore(user: dict[str, Any], form: Any) -> dict[str, Any]:
    """The restore form: streak length, the last active local day (default today) and a reason."""
    from gamification.days import day_start_us, local_date

    raw_current = str(form.get("current", "")).strip()
    try:
        current = int(raw_current)
    except ValueError:
        raise BadInput(f"current: “{raw_current[:20]}” is not a whole number of days.") from None
    if not 1 <= current <= MAX_STREAK:
        raise BadInput(f"current: a streak is 1 to {MAX_STREAK} days long.")
    tz_name = user.get("timezone") or "UTC"
    now = now_us()
    today = local_date(now, tz_name)
    raw_day = str(form.get("day", "")).strip()
    try:
        day = date.fromisoformat(raw_day) if raw_day else today
    except ValueError:
        raise BadInput(f"day: “{raw_day[:20]}” is not a date (YYYY-MM-DD).") from None
    if day > today:
        raise BadInput(f"day: {day} is in the future for this user (today is {today} in {tz_name}).")
    reason = str(form.get("reason", "")).strip()
    if len(reason) > MAX_REASON:
        raise BadInput(f"reason: at most {MAX_REASON} characters.")
    # noon of the local day (or now, today): unambiguous as a day, never in the future
    moment = min(day_start_us(day, tz_name) + 12 * 3600 * 1_000_000, now)
    return {"current": current, "day": day.isoformat(), "moment": moment, "reason": reason, "timezone": tz_name}


def restore_streak(user_id: str, form: dict[str, Any], staff: str) -> str:
    from gamification.managers import streaks

    view = streaks.restore(
        user_id, form["current"], form["moment"], restored_by=staff, reason=form["reason"] or "admin outage repair"
    )
    return f"{form['current']} days as of {form['day']}; now {view['current']} (longest {view['longest']})"
