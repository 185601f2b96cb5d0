"""The JSON that gamification events carry is the REST API's: the managers shape it without the
serializers, so these keep both in step (a field added to one and not the other fails here)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gamification import achievements
from gamification import serializers as s
from gamification.managers.engine import achievement_json, streak_json, streak_view
from gamification.managers.goals import decode_goal, goal_json
from gamification.managers.progress import decode_progress, progress_summary_json
from mookti.ids import now_us

NOW = now_us()
DAY = 86_400 * 1_000_000


def as_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


GOALS = [
    {"id": "g1", "userId": "u1", "title": "Read", "progress": "40", "createdAt": NOW, "updatedAt": NOW},
    {
        "id": "g2",
        "userId": "u1",
        "title": "Write",
        "description": "daily",
        "progress": "100",
        "current": "5",
        "target": "5",
        "dueDate": str(NOW + DAY),
        "status": "completed",
        "createdAt": NOW - DAY,
        "updatedAt": NOW,
        "completedAt": str(NOW),
    },
]
STREAKS = [{}, {"current": "3", "longest": "9", "freezes": "1", "lastAt": str(NOW - DAY)}]
MODULE = {"moduleId": "m1", "completedNodes": ["a", "b"], "totalNodes": 4, "timeSpentSeconds": 90}


@pytest.mark.parametrize("raw", GOALS)
def test_goal_event_shape_is_the_api_shape(raw):
    goal = decode_goal({k: str(v) for k, v in raw.items()}, NOW)
    assert as_json(goal_json(goal)) == as_json(s.GoalOut(goal).data)


@pytest.mark.parametrize("raw", STREAKS)
def test_streak_event_shape_is_the_api_shape(raw):
    view = streak_view(raw, "Europe/Paris", NOW)
    assert as_json(streak_json(view)) == as_json(s.StreakOut(view).data)


@pytest.mark.parametrize("awarded_at", [None, NOW])
def test_achievement_event_shape_is_the_api_shape(awarded_at):
    described = achievements.describe(achievements.ACHIEVEMENTS[0].id, awarded_at)
    assert as_json(achievement_json(described)) == as_json(s.AchievementOut(described).data)


def test_progress_event_shape_is_the_api_shape():
    progress = decode_progress({"pathId": "p1", "modules": json.dumps([MODULE]), "updatedAt": str(NOW)})
    assert as_json(progress_summary_json(progress)) == as_json(s.ProgressSummaryOut(progress).data)
    assert "modules" not in progress_summary_json(progress)
