"""The user's gamification panel, the goals page and the restore-streak action (outage repair)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from gamification.days import DAY_US, local_date
from gamification.managers import activity, goals, streaks, summary
from mookti.ids import now_us
from mookti.redis import get_redis
from storage.managers import users
from storage.staff import keys as staff_keys


@pytest.fixture
def active_learner(make_user):
    """Active yesterday and today (a 2-day streak), 20 XP, one goal at 40%."""
    user = make_user(name="Gita Gamer")
    now = now_us()
    activity.record(user, "item", occurred_at=now - DAY_US)
    activity.record(user, "item", occurred_at=now)
    goal = goals.create(user, {"title": "Finish chapter 3", "progress": 40, "dueDate": now + 7 * DAY_US})
    return {**user, "goal": goal}


def test_user_page_shows_streak_xp_goals(staff_client: Client, active_learner) -> None:
    response = staff_client.get(reverse("admin:mookti_user", args=[active_learner["id"]]))
    panel = next(p["context"] for p in response.context["panels"] if p["name"] == "gamification")
    assert panel["streak"]["current"] == 2
    xp = summary(active_learner["id"])["xp"]["total"]
    assert xp >= 20  # two items, plus whatever achievements they earned
    assert panel["xp"]["total"] == xp
    assert panel["stats"]["totals"]["activeDays"] == 2
    assert [g["title"] for g in panel["goals"]["active"]] == ["Finish chapter 3"]
    body = response.content.decode()
    assert "Finish chapter 3" in body and "40%" in body
    assert f'<span class="number">{xp}</span>XP' in body


def test_goals_page_lists_every_goal(staff_client: Client, active_learner) -> None:
    response = staff_client.get(reverse("admin:mookti_user_goals", args=[active_learner["id"]]))
    assert [(g["title"], g["status"], g["progress_text"]) for g in response.context["goals"]] == [
        ("Finish chapter 3", "active", "40%")
    ]


def test_restore_streak_form_confirmation_and_restore(staff_client: Client, make_user) -> None:
    user = make_user()
    now = now_us()
    activity.record(user, "item", occurred_at=now - 5 * DAY_US)  # then an outage: the streak is broken
    assert streaks.get(user)["current"] == 0
    url = reverse("admin:mookti_user_restore_streak", args=[user["id"]])

    form = staff_client.get(url)
    assert form.status_code == 200
    assert "(broken)" in form.content.decode()

    yesterday = local_date(now, "UTC") - timedelta(days=1)
    params = {"current": "6", "day": yesterday.isoformat(), "reason": "outage"}
    confirm = staff_client.get(url, params)
    assert confirm.status_code == 200
    assert "to 6 days as of" in confirm.content.decode()
    assert streaks.get(user)["current"] == 0  # reviewing changes nothing

    response = staff_client.post(url, {**params, "confirm": "yes"})
    assert response.status_code == 302
    state = streaks.get(users.get(user["id"]))
    assert (state["current"], state["alive"]) == (6, True)
    _, entry = get_redis().xrevrange(staff_keys.admin_audit(), count=1)[0]
    assert (entry["staff"], entry["action"], entry["target"]) == (
        "support",
        "user.restore_streak",
        f"user:{user['id']}",
    )
    assert "outage" in entry["detail"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"current": "abc"}, "not a whole number"),
        ({"current": "0"}, "1 to"),
        ({"current": "3", "day": "yesterday"}, "not a date"),
        ({"current": "3", "day": "2999-01-01"}, "in the future"),
        ({"current": "3", "reason": "x" * 201}, "at most 200"),
    ],
)
def test_restore_streak_bad_input(staff_client: Client, active_learner, params: dict, message: str) -> None:
    url = reverse("admin:mookti_user_restore_streak", args=[active_learner["id"]])
    response = staff_client.post(url, {**params, "confirm": "yes"})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert streaks.get(active_learner)["current"] == 2
