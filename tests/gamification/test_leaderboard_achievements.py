"""Weekly leaderboard ranks and neighbours, achievements awarded once, user deletion."""

from __future__ import annotations

from django.conf import settings

from gamification import keys
from gamification.days import iso_week
from gamification.managers import leaderboard
from mookti.ids import now_us
from mookti.redis import get_redis
from tests.gamification.conftest import act, at, events_of


def earn(api, practices: int) -> None:
    for _ in range(practices):
        assert api.post("/api/gamification/activity", {"type": "practice"}).status_code == 201


def test_weekly_ranks_and_neighbours(make_user):
    # A week of its own (ahead of the clock), so other tests' learners are not on the board.
    learners = [make_user(name=f"L{i}") for i in range(5)]
    for i, learner in enumerate(learners):
        for n in range(i + 1):
            act(learner, at("2027-10-06 12:00") + n)  # 5, 10, ... XP
    me = learners[2]
    r = me["api"].get("/api/gamification/leaderboard", {"week": "2027-W40", "neighbours": 1})
    assert r.status_code == 200, r.content
    board = r.json()
    assert (board["week"], board["size"], board["startsAt"]) == ("2027-W40", 5, "2027-10-04T00:00:00.000Z")
    assert [e["name"] for e in board["top"]] == ["L4", "L3", "L2", "L1", "L0"]
    assert [(e["rank"], e["xp"]) for e in board["top"]] == [(1, 25), (2, 20), (3, 15), (4, 10), (5, 5)]
    assert board["me"] == {"rank": 3, "userId": me["id"], "name": "L2", "xp": 15, "isMe": True}
    assert [(e["rank"], e["name"]) for e in board["neighbours"]] == [(2, "L3"), (3, "L2"), (4, "L1")]
    top_only = leaderboard.weekly(learners[0]["id"], "2027-W40", neighbours=2, size=2)
    assert [e["rank"] for e in top_only["top"]] == [1, 2]
    assert [e["rank"] for e in top_only["neighbours"]] == [3, 4, 5] and top_only["me"]["rank"] == 5


def test_api_activity_ranks_this_week(alice):
    earn(alice["api"], 2)
    board = alice["api"].get("/api/gamification/leaderboard").json()
    assert board["week"] == iso_week(now_us())
    assert (board["me"]["xp"], board["me"]["userId"]) == (10, alice["id"])


def test_leaderboard_of_another_week_and_bad_weeks(alice):
    r = alice["api"].get("/api/gamification/leaderboard", {"week": "2020-W01"})
    assert r.status_code == 200
    assert (r.json()["top"], r.json()["me"], r.json()["startsAt"]) == ([], None, "2019-12-30T00:00:00.000Z")
    for week in ("2026-W54", "2026-7", "next", "2026-W00"):
        r = alice["api"].get("/api/gamification/leaderboard", {"week": week})
        assert r.status_code == 400 and "week" in r.json()["error"]["fields"], week
    r = alice["api"].get("/api/gamification/leaderboard", {"neighbours": 50})
    assert r.status_code == 400


def test_a_learner_without_xp_has_no_rank(alice, bob):
    earn(bob["api"], 1)
    board = leaderboard.weekly(alice["id"])
    assert board["me"] is None and board["neighbours"] == []


def test_streak_achievements_are_awarded_once(make_user):
    user = make_user()
    for day in range(1, 8):
        act(user, at(f"2026-07-{day:02d} 12:00"))
    act(user, at("2026-07-10 12:00"))  # broken
    for day in range(11, 18):
        act(user, at(f"2026-07-{day:02d} 12:00"))
    awarded = [data["id"] for kind, data in events_of(user["id"]) if kind == "achievement.awarded"]
    assert awarded.count("streak_7") == 1
    body = user["api"].get("/api/gamification/achievements").json()
    streak_7 = next(a for a in body if a["id"] == "streak_7")
    assert streak_7["awardedAt"] == "2026-07-07T12:00:00.000Z" and streak_7["xp"] == 50
    assert next(a for a in body if a["id"] == "streak_30")["awardedAt"] is None
    totals = get_redis().hgetall(keys.totals(user["id"]))
    assert int(totals["xp:achievement"]) == 50


def test_first_message_is_awarded_once(alice):
    api = alice["api"]
    chat_id = api.post("/api/storage/chat", {"title": "t"}).json()["id"]
    for text in ("one", "two", "three"):
        api.post("/api/storage/message", {"chatId": chat_id, "role": "user", "content": text})
    summary = api.get("/api/gamification/summary").json()
    assert summary["xp"]["bySource"] == {"message": 6, "achievement": 10}
    assert summary["stats"]["days"][-1]["messages"] == 3


def test_deleting_a_user_removes_gamification_state(make_user, service):
    user = make_user()
    api = user["api"]
    earn(api, 2)
    goal = api.post("/api/gamification/goals", {"title": "g"}).json()
    api.patch(f"/api/gamification/goals/{goal['id']}", {"progress": 100})
    api.put("/api/gamification/progress/p1", {"modules": [{"moduleId": "m", "completedNodes": ["n"]}]})
    week = iso_week(now_us())
    assert get_redis().zscore(keys.leaderboard(week), user["id"]) is not None
    assert service.delete(f"/api/storage/user/{user['id']}").status_code == 204
    assert get_redis().zscore(keys.leaderboard(week), user["id"]) is None
    left = [
        k
        for k in get_redis().scan_iter(match=f"{settings.MOOKTI_REDIS_PREFIX}user:{{{user['id']}}}:*", count=1000)
        if not k.endswith(":events")
    ]
    assert left == []


def test_summary_has_everything(alice):
    api = alice["api"]
    earn(api, 1)
    api.post("/api/gamification/goals", {"title": "g", "progress": 10})
    body = api.get("/api/gamification/summary", {"days": 7}).json()
    assert set(body) == {"userId", "timezone", "streak", "xp", "achievements", "stats", "goals", "progress"}
    assert len(body["stats"]["days"]) == 7 and body["xp"]["weekXp"] == 5
    assert [g["title"] for g in body["goals"]["active"]] == ["g"]
    assert api.get("/api/gamification/summary", {"days": 0}).status_code == 400
