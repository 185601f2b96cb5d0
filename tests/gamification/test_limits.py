"""Issue 12, defects 11 and 12: XP cannot be farmed with a learner's own token (daily caps per
activity type and local day, a write rate limit), and leaderboard ties go to who got there first."""

from __future__ import annotations

import pytest

from gamification.managers import leaderboard
from tests.conftest import snapshot_keys
from tests.gamification.conftest import act, at

ACTIVITY = "/api/gamification/activity"


@pytest.fixture
def caps(settings):
    def set_caps(**values):
        settings.MOOKTI_GAMIFICATION = {**settings.MOOKTI_GAMIFICATION, **values}

    return set_caps


def refused(response, field: str | None = None) -> None:
    """A 429 in the error format (naming the capped field, if any) with a Retry-After."""
    assert response.status_code == 429, response.content
    body = response.json()["error"]
    assert body["code"] == "rate_limit:gamification"
    assert field is None or field in body["fields"]
    assert int(response["Retry-After"]) >= 1


def test_items_per_day_are_capped_and_a_refusal_writes_nothing(alice, caps):
    caps(DAILY_ITEMS=3)
    api = alice["api"]
    for _ in range(3):
        assert api.post(ACTIVITY, {"type": "item"}).status_code == 201
    before = snapshot_keys()
    refused(api.post(ACTIVITY, {"type": "item"}), "items")
    assert snapshot_keys() == before
    assert api.get("/api/gamification/stats").json()["days"][-1]["itemsCompleted"] == 3


def test_minutes_per_day_are_capped(alice, caps):
    caps(DAILY_MINUTES=600)
    api = alice["api"]
    refused(api.post(ACTIVITY, {"type": "practice", "minutes": 1440}), "minutes")
    assert api.post(ACTIVITY, {"type": "practice", "minutes": 600}).status_code == 201
    before = snapshot_keys()
    refused(api.post(ACTIVITY, {"type": "practice", "minutes": 1}), "minutes")
    assert snapshot_keys() == before


def test_practice_sessions_per_day_are_capped(alice, caps):
    caps(DAILY_ACTIVITIES={"practice": 2})
    api = alice["api"]
    assert [api.post(ACTIVITY, {"type": "practice"}).status_code for _ in range(2)] == [201, 201]
    refused(api.post(ACTIVITY, {"type": "practice"}), "type")


def test_made_up_nodes_cannot_buy_a_week_of_xp(alice, caps):
    caps(DAILY_ITEMS=50)
    api = alice["api"]
    modules = [
        {"moduleId": f"m{m}", "completedNodes": [f"n{n}" for n in range(1000)], "timeSpentSeconds": 0} for m in range(5)
    ]
    before = snapshot_keys()
    refused(api.put("/api/gamification/progress/farm", {"modules": modules}), "items")
    assert snapshot_keys() == before
    honest = [{"moduleId": "m0", "completedNodes": [f"n{n}" for n in range(10)], "timeSpentSeconds": 600}]
    assert api.put("/api/gamification/progress/farm", {"modules": honest}).status_code == 200
    board = api.get("/api/gamification/leaderboard").json()
    assert board["me"]["xp"] <= 50 * 10 + 100  # at most the day's items, plus first-time achievements


def test_gamification_writes_are_rate_limited(alice, caps):
    caps(WRITES_PER_MINUTE=4)
    api = alice["api"]
    assert [api.post(ACTIVITY, {"type": "practice"}).status_code for _ in range(4)] == [201] * 4
    before = snapshot_keys()
    refused(api.post(ACTIVITY, {"type": "practice"}))
    refused(api.put("/api/gamification/progress/p", {"modules": []}))
    assert snapshot_keys() == before
    assert api.get("/api/gamification/streak").status_code == 200  # reads are not limited


def test_a_tie_goes_to_who_reached_the_score_first(make_user):
    # the one with the lower id gets there first (equal scores used to rank the higher id first)
    first, second = sorted([make_user(name="A"), make_user(name="B")], key=lambda u: u["id"])
    act(second, at("2027-11-03 09:00"))  # 5 XP first
    act(first, at("2027-11-03 10:00"))  # 5 XP an hour later
    act(first, at("2027-11-03 11:00"))  # 10 XP
    act(second, at("2027-11-03 12:00"))  # 10 XP, last to get there
    board = leaderboard.weekly(first["id"], "2027-W44")
    assert [(e["userId"], e["xp"]) for e in board["top"]] == [(first["id"], 10), (second["id"], 10)]
    assert board["me"]["rank"] == 1
