"""Gamification in the staff admin: the user-page panel, the goals page and the streak restore.

Registered with :mod:`storage.staff.registry` (imported by the admin's autodiscovery of ``staff``
modules), so the admin does not know this app; everything is read through this app's managers.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from gamification.days import day_start_us, local_date
from gamification.managers import goals as goal_manager
from gamification.managers import streaks, summary
from mookti.ids import now_us
from storage.staff import registry
from storage.staff.audit import audit
from storage.staff.views.common import BadInput, confirm_page, confirmed, done, load_user, render, user_url, when

PANEL_DAYS = 14
MAX_STREAK = 100_000
MAX_REASON = 200


def panel(user: dict[str, Any]) -> dict[str, Any]:
    """Streak, XP, achievements, the last two weeks, goals and progress (``gamification.managers.summary``)."""
    found = summary(user["id"], days=PANEL_DAYS)
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


def user_goals(request: HttpRequest, site, user_id: str) -> HttpResponse:
    """All of a user's goals: active by due date, then expired, then completed."""
    user = load_user(user_id)
    context = {
        "title": f"Goals of {user['email'] or user['id']}",
        "subject": user,
        "goals": [_goal_display(g) for g in goal_manager.list(user_id, status="all", limit=500)],
        "back": user_url(site, user_id),
    }
    return render(request, site, "admin/mookti/user_goals.html", context)


def parse_restore(user: dict[str, Any], form: Any) -> dict[str, Any]:
    """The restore form: streak length, the last active local day (default today) and a reason."""
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


def restore_streak(request: HttpRequest, site, user_id: str) -> HttpResponse:
    """Outage repair: the form (current streak shown), then a confirmation, then the restore."""
    user = load_user(user_id)
    source = request.POST if request.method == "POST" else request.GET
    state = streaks.get(user)
    state["last"] = when(state.get("lastActivity"))
    if "current" not in source:
        context = {
            "title": "Restore streak",
            "subject": user,
            "streak": state,
            "suggested": max(state["longest"] if not state["alive"] else state["current"], 1),
            "back": user_url(site, user_id),
        }
        return render(request, site, "admin/mookti/restore_streak.html", context)
    form = parse_restore(user, source)
    if confirmed(request):
        staff = request.user.get_username()
        reason = form["reason"] or "admin outage repair"
        view = streaks.restore(user_id, form["current"], form["moment"], restored_by=staff, reason=reason)
        result = f"{form['current']} days as of {form['day']}; now {view['current']} (longest {view['longest']})"
        audit(request, "user.restore_streak", f"user:{user_id}", f"{user['email']}: {result}; {form['reason']}")
        return done(request, f"Streak of {user['email']} restored: {result}.", user_url(site, user_id))
    return confirm_page(
        request,
        site,
        title="Restore streak",
        question=f"Restore the streak of {user['email']} to {form['current']} days as of {form['day']}?",
        facts=[
            ("User", user["email"]),
            ("Timezone", form["timezone"]),
            ("Streak now", f"{state['current']} (longest {state['longest']}, last active {state['lastActivityDate']})"),
            ("Restore to", f"{form['current']} days"),
            ("Last active day", form["day"]),
            ("Reason", form["reason"] or "—"),
        ],
        consequences=[
            "Activity recorded after that day is replayed on top, so the learner continues from there.",
            "The longest streak never decreases; the learner's apps get a streak.restored event.",
        ],
        hidden={"current": str(form["current"]), "day": form["day"], "reason": form["reason"]},
        button="Restore streak",
        cancel=user_url(site, user_id),
    )


registry.register_page(registry.Page("users/<str:user_id>/goals/", user_goals, "mookti_user_goals"))
registry.register_page(
    registry.Page("users/<str:user_id>/restore-streak/", restore_streak, "mookti_user_restore_streak")
)
registry.register_user_panel(registry.UserPanel("gamification", "admin/mookti/_gamification.html", panel, order=10))
registry.register_user_link(
    registry.UserLink(
        "Restore streak",
        lambda site, user_id: reverse("admin:mookti_user_restore_streak", args=[user_id], current_app=site.name),
        "restore-streak-link",
        order=20,
    )
)
registry.register_user_deletion_note("gamification", "Streak, goals, stats, progress and XP are deleted.")
