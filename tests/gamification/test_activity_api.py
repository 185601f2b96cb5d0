"""Activity through the API and through the storage app's messages; stats ranges; events."""

from __future__ import annotations

from datetime import date, timedelta

from gamification.days import local_date
from gamification.managers import stats
from mookti.ids import iso, now_us
from tests.conftest import snapshot_keys
from tests.gamification.conftest import act, at, events_of

DAY_US = 24 * 3600 * 1_000_000


def test_explicit_activity_counts_and_is_idempotent(alice):
    api = alice["api"]
    first = api.post("/api/gamification/activity", {"type": "item", "id": "sync-1"})
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["counted"] is True
    assert body["xpAwarded"] == 10 + 10  # the item, then "first_item"
    assert [a["id"] for a in body["achievements"]] == ["first_item"]
    assert body["stats"]["itemsCompleted"] == 1 and body["stats"]["xp"] == 20
    assert body["streak"]["current"] == 1 and body["streak"]["activeToday"] is True

    repeat = api.post("/api/gamification/activity", {"type": "item", "id": "sync-1"})
    assert repeat.status_code == 200, repeat.content
    assert repeat.json()["counted"] is False and repeat.json()["stats"]["itemsCompleted"] == 1

    practice = api.post("/api/gamification/activity", {"type": "practice", "minutes": 25})
    assert practice.status_code == 201
    assert practice.json()["stats"]["minutes"] == 25 and practice.json()["xpAwarded"] == 5

    streak = api.get("/api/gamification/streak").json()
    assert (streak["current"], streak["longest"], streak["alive"]) == (1, 1, True)
    assert streak["lastActivity"].endswith("Z")


def test_offline_activity_counts_on_its_own_day(make_user):
    user = make_user(timezone="UTC")
    yesterday = now_us() - DAY_US
    r = user["api"].post("/api/gamification/activity", {"type": "practice", "occurredAt": iso(yesterday)})
    assert r.status_code == 201, r.content
    assert r.json()["date"] == local_date(yesterday, "UTC").isoformat()


def test_activity_timezone_updates_the_profile(alice):
    r = alice["api"].post("/api/gamification/activity", {"type": "practice", "timezone": "Asia/Tokyo"})
    assert r.status_code == 201, r.content
    assert r.json()["streak"]["timezone"] == "Asia/Tokyo"
    assert alice["api"].get("/api/storage/user/me").json()["timezone"] == "Asia/Tokyo"


def test_bad_activity_is_a_400_and_writes_nothing(alice):
    api = alice["api"]
    api.post("/api/gamification/activity", {"type": "practice"})
    before = snapshot_keys()
    cases = [
        ({"type": "practice", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"type": "message"}, "type"),
        ({}, "type"),
        ({"type": "practice", "minutes": -5}, "minutes"),
        ({"type": "practice", "minutes": 100000}, "minutes"),
        ({"type": "practice", "occurredAt": iso(now_us() + 3600 * 1_000_000)}, "occurredAt"),
        ({"type": "practice", "occurredAt": iso(now_us() - 30 * DAY_US)}, "occurredAt"),
        ({"type": "practice", "occurredAt": "yesterday"}, "occurredAt"),
        ({"type": "practice", "id": "has spaces"}, "id"),
        ({"type": "practice", "bonus": 1000}, "bonus"),
    ]
    for body, field in cases:
        r = api.post("/api/gamification/activity", body)
        assert r.status_code == 400, (body, r.content)
        assert field in r.json()["error"]["fields"], (body, r.json())
    assert api.post("/api/gamification/activity", [1, 2], format="json").status_code == 400
    assert snapshot_keys() == before


def test_anonymous_callers_are_refused(anon):
    for path in ("streak", "stats", "goals", "progress", "leaderboard", "summary", "achievements"):
        assert anon.get(f"/api/gamification/{path}").status_code in (401, 403), path
    assert anon.post("/api/gamification/activity", {"type": "item"}).status_code in (401, 403)


def chat_of(api):
    return api.post("/api/storage/chat", {"title": "Fractions"}).json()["id"]


def test_a_learners_message_is_activity_in_the_same_write(alice):
    api = alice["api"]
    chat_id = chat_of(api)
    r = api.post(
        "/api/storage/message",
        {
            "messages": [
                {"chatId": chat_id, "role": "user", "content": "What is 1/2 + 1/3?"},
                {"chatId": chat_id, "role": "assistant", "content": "5/6"},
            ]
        },
    )
    assert r.status_code == 201, r.content
    summary = api.get("/api/gamification/summary").json()
    today = summary["stats"]["days"][-1]
    assert (today["messages"], today["xp"]) == (1, 2 + 10)  # one learner message, "first_message"
    assert summary["streak"]["current"] == 1
    assert [a["id"] for a in summary["achievements"] if a["awardedAt"]] == ["first_message"]
    kinds = [kind for kind, _ in events_of(alice["id"])]
    assert kinds.index("message.created") < kinds.index("streak.updated")
    assert {"xp.awarded", "achievement.awarded"} <= set(kinds)
    # message.created says the day's counters moved, xp.awarded gives the totals: no stats.updated
    assert "stats.updated" not in kinds


def test_assistant_and_imported_messages_are_not_activity(alice):
    api = alice["api"]
    chat_id = chat_of(api)
    api.post("/api/storage/message", {"chatId": chat_id, "role": "assistant", "content": "Hello!"})
    old = iso(now_us() - 60 * DAY_US)
    r = api.post("/api/storage/message", {"chatId": chat_id, "role": "user", "content": "old", "createdAt": old})
    assert r.status_code == 201, r.content
    streak = api.get("/api/gamification/streak").json()
    assert streak["longest"] == 0
    assert api.get("/api/gamification/stats").json()["totals"]["messages"] == 0


def test_stats_range_for_a_heatmap(make_user):
    user = make_user(timezone="America/Sao_Paulo")
    tz = "America/Sao_Paulo"
    act(user, at("2026-09-01 23:30", tz), "item")
    act(user, at("2026-09-01 23:45", tz), "practice", minutes=30)
    act(user, at("2026-09-03 07:00", tz), "practice", minutes=15)
    r = user["api"].get("/api/gamification/stats", {"from": "2026-08-31", "to": "2026-09-04"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert [d["date"] for d in body["days"]] == ["2026-08-31", "2026-09-01", "2026-09-02", "2026-09-03", "2026-09-04"]
    assert [d["minutes"] for d in body["days"]] == [0, 30, 0, 15, 0]
    assert [d["itemsCompleted"] for d in body["days"]] == [0, 1, 0, 0, 0]
    assert body["totals"] == {
        "activeDays": 2,
        "messages": 0,
        "minutes": 45,
        "xp": 10 + 10 + 5 + 5,
        "itemsCompleted": 1,
        "goalsCompleted": 0,
    }
    assert body["from"] == "2026-08-31" and body["timezone"] == tz


def test_stats_expire_after_the_retention(make_user):
    from gamification import keys
    from mookti.redis import get_redis

    user = make_user()
    act(user, at("2026-09-01 12:00"))
    ttl = get_redis().ttl(keys.stats(user["id"], "2026-09-01"))
    expires = date(2026, 9, 1) + timedelta(days=401)
    remaining = (expires - local_date(now_us(), "UTC")).days
    assert remaining - 1 <= ttl // 86400 <= remaining


def test_bad_stats_ranges_are_400(alice):
    api = alice["api"]
    cases = [
        ({"from": "2026-09-05", "to": "2026-09-01"}, "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),
        ({"from": "not-a-date"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "9999-12-31"}, "from"),
        ({"days": "7"}, "days"),
    ]
    for params, field in cases:
        r = api.get("/api/gamification/stats", params)
        assert r.status_code == 400, (params, r.content)
        assert field in r.json()["error"]["fields"], (params, r.json())


def test_default_stats_range_is_the_last_30_days(alice):
    body = stats.range({"id": alice["id"], "timezone": "UTC"}, now=at("2026-09-30 12:00"))
    assert (body["from"], body["to"], len(body["days"])) == (date(2026, 9, 1), date(2026, 9, 30), 30)


def test_offline_messages_of_two_days_extend_the_streak(make_user):
    user = make_user(timezone="UTC")
    api = user["api"]
    chat_id = chat_of(api)
    yesterday = now_us() - DAY_US
    batch = [
        {"chatId": chat_id, "role": "user", "content": "sent offline", "createdAt": iso(yesterday)},
        {"chatId": chat_id, "role": "user", "content": "and now"},
    ]
    assert api.post("/api/storage/message", {"messages": batch}).status_code == 201
    streak = api.get("/api/gamification/streak").json()
    assert (streak["current"], streak["activeToday"]) == (2, True)
    days = api.get("/api/gamification/stats").json()["days"]
    assert [d["messages"] for d in days[-2:]] == [1, 1]
