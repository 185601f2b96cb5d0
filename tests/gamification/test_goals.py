"""Goals: CRUD, ordering, authorization, completion (event + XP once), expiry, bad input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gamification.managers import goals
from mookti.ids import iso, now_us
from tests.conftest import snapshot_keys
from tests.gamification.conftest import events_of

DAY_US = 24 * 3600 * 1_000_000


def in_days(days: float) -> str:
    return iso(now_us() + int(days * DAY_US))


def create(api, **fields):
    r = api.post("/api/gamification/goals", {"title": "Finish fractions", **fields})
    assert r.status_code == 201, r.content
    return r.json()


def test_goal_crud_and_listing_by_due_date(alice):
    api = alice["api"]
    late = create(api, title="Late", dueDate=in_days(30))
    none = create(api, title="Someday")
    soon = create(api, title="Soon", dueDate=in_days(2), description="Chapter 3", progress=40)
    assert soon["status"] == "active" and soon["progress"] == 40 and soon["description"] == "Chapter 3"

    listed = api.get("/api/gamification/goals").json()["goals"]
    assert [g["id"] for g in listed] == [soon["id"], late["id"], none["id"]]

    r = api.patch(f"/api/gamification/goals/{late['id']}", {"title": "Later", "dueDate": in_days(1)})
    assert r.status_code == 200, r.content
    assert r.json()["title"] == "Later"
    listed = api.get("/api/gamification/goals").json()["goals"]
    assert [g["id"] for g in listed] == [late["id"], soon["id"], none["id"]]

    assert api.get(f"/api/gamification/goals/{none['id']}").json()["title"] == "Someday"
    assert api.delete(f"/api/gamification/goals/{none['id']}").status_code == 204
    assert api.get(f"/api/gamification/goals/{none['id']}").status_code == 404
    assert none["id"] not in [g["id"] for g in api.get("/api/gamification/goals").json()["goals"]]
    kinds = [kind for kind, _ in events_of(alice["id"])]
    assert kinds.count("goal.created") == 3 and "goal.updated" in kinds and "goal.deleted" in kinds


def test_others_goals_are_404(alice, bob):
    goal = create(alice["api"])
    path = f"/api/gamification/goals/{goal['id']}"
    assert bob["api"].get(path).status_code == 404
    assert bob["api"].patch(path, {"title": "mine now"}).status_code == 404
    assert bob["api"].delete(path).status_code == 404
    assert bob["api"].get("/api/gamification/goals").json()["goals"] == []
    assert alice["api"].get(path).json()["title"] == "Finish fractions"


def test_target_progress_completes_with_an_event_and_xp_once(alice):
    api = alice["api"]
    goal = create(api, target=10, current=5)
    assert goal["progress"] == 50
    done = api.patch(f"/api/gamification/goals/{goal['id']}", {"current": 10}).json()
    assert (done["status"], done["progress"]) == ("completed", 100) and done["completedAt"]
    summary = api.get("/api/gamification/summary").json()
    assert summary["xp"]["bySource"] == {"goal": 50, "achievement": 25}
    assert [g["id"] for g in summary["goals"]["completed"]] == [goal["id"]]
    assert summary["goals"]["active"] == []
    completed = [data for kind, data in events_of(alice["id"]) if kind == "goal.completed"]
    assert len(completed) == 1 and completed[0]["xpAwarded"] == 75

    api.patch(f"/api/gamification/goals/{goal['id']}", {"current": 12})
    reopened = api.patch(f"/api/gamification/goals/{goal['id']}", {"status": "active"}).json()
    assert reopened["status"] == "active" and reopened["completedAt"] is None
    api.patch(f"/api/gamification/goals/{goal['id']}", {"status": "completed"})
    assert api.get("/api/gamification/summary").json()["xp"]["total"] == 75


def test_concurrent_completion_rewards_once(alice):
    user = {"id": alice["id"], "timezone": "UTC"}
    goal = goals.create(user, {"title": "Race"})
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: goals.update(user, goal["id"], {"progress": 100}), range(8)))
    assert {r["status"] for r in results} == {"completed"}
    summary = alice["api"].get("/api/gamification/summary").json()
    assert summary["xp"]["bySource"].get("goal") == 50
    assert summary["stats"]["totals"]["goalsCompleted"] == 1


def test_goal_xp_is_capped_per_day(alice):
    api = alice["api"]
    for i in range(4):
        goal = create(api, title=f"Goal {i}")
        api.patch(f"/api/gamification/goals/{goal['id']}", {"progress": 100})
    summary = api.get("/api/gamification/summary").json()
    assert summary["xp"]["bySource"]["goal"] == 3 * 50
    assert summary["stats"]["days"][-1]["goalsCompleted"] == 4


def test_a_goal_past_its_due_date_is_expired(alice):
    user = {"id": alice["id"], "timezone": "UTC"}
    now = now_us()
    goal = goals.create(user, {"title": "Quiz", "dueDate": now + DAY_US}, now=now)
    later = now + 2 * DAY_US
    assert goals.get(alice["id"], goal["id"], now=later)["status"] == "expired"
    assert goals.list(alice["id"], "active", now=later) == []
    assert [g["id"] for g in goals.list(alice["id"], "expired", now=later)] == [goal["id"]]
    revived = goals.update(user, goal["id"], {"dueDate": later + DAY_US}, now=later)
    assert revived["status"] == "active"


def test_date_only_due_date_is_the_end_of_the_local_day(make_user):
    user = make_user(timezone="Asia/Tokyo")
    goal = create(user["api"], dueDate="2099-12-31")
    assert goal["dueDate"] == "2099-12-31T14:59:59.999Z"


def test_duplicate_goal_id_is_a_conflict(alice):
    create(alice["api"], id="g-1")
    r = alice["api"].post("/api/gamification/goals", {"id": "g-1", "title": "Again"})
    assert r.status_code == 409 and "id" in r.json()["error"]["fields"]


def test_bad_goal_input_is_a_400_and_writes_nothing(alice):
    api = alice["api"]
    goal = create(api, target=20)
    before = snapshot_keys()
    bad_creates = [
        ({"title": "x" * 201}, "title"),
        ({"title": ""}, "title"),
        ({}, "title"),
        ({"title": "Run", "progress": -1}, "progress"),
        ({"title": "Run", "progress": 101}, "progress"),
        ({"title": "Run", "progress": 100}, "progress"),
        ({"title": "Run", "current": -3, "target": 10}, "current"),
        ({"title": "Run", "target": 0}, "target"),
        ({"title": "Run", "target": 10, "progress": 50}, "progress"),
        ({"title": "Run", "dueDate": in_days(-1)}, "dueDate"),
        ({"title": "Run", "dueDate": "2020-01-01"}, "dueDate"),
        ({"title": "Run", "dueDate": "tomorrow"}, "dueDate"),
        ({"title": "Run", "dueDate": "9999-12-31"}, "dueDate"),
        ({"title": "Run", "dueDate": True}, "dueDate"),
        ({"title": "Run", "status": "completed"}, "status"),
        ({"title": "Run", "id": "a:b{c}"}, "id"),
        ({"title": "Run", "owner": "bob"}, "owner"),
        ({"title": "Run", "description": "d" * 2001}, "description"),
    ]
    for body, field in bad_creates:
        r = api.post("/api/gamification/goals", body)
        assert r.status_code == 400, (body, r.content)
        assert field in r.json()["error"]["fields"], (body, r.json())
    bad_updates = [
        ({}, "non_field_errors"),
        ({"current": -1}, "current"),
        ({"dueDate": in_days(-2)}, "dueDate"),
        ({"status": "expired"}, "status"),
        ({"title": "y" * 500}, "title"),
    ]
    for body, field in bad_updates:
        r = api.patch(f"/api/gamification/goals/{goal['id']}", body)
        assert r.status_code == 400, (body, r.content)
        assert field in r.json()["error"]["fields"], (body, r.json())
    r = api.patch(f"/api/gamification/goals/{goal['id']}", {"progress": 30})  # the stored goal has a target
    assert r.status_code == 409 and "progress" in r.json()["error"]["fields"], r.content
    assert api.get("/api/gamification/goals/bad{id}").status_code == 400
    assert api.get("/api/gamification/goals", {"status": "lost"}).status_code == 400
    assert snapshot_keys() == before


def test_active_goals_are_capped(alice, settings):
    settings.MOOKTI_GAMIFICATION = {**settings.MOOKTI_GAMIFICATION, "MAX_ACTIVE_GOALS": 2}
    api = alice["api"]
    first = create(api, title="One")
    create(api, title="Two")
    r = api.post("/api/gamification/goals", {"title": "Three"})
    assert r.status_code == 400 and "goals" in r.json()["error"]["fields"]
    api.patch(f"/api/gamification/goals/{first['id']}", {"status": "completed"})
    assert api.post("/api/gamification/goals", {"title": "Three"}).status_code == 201
