"""Learning progress: put/get, percentages, items awarded once, offline merge, bad input."""

from __future__ import annotations

from mookti.ids import iso, now_us
from tests.conftest import snapshot_keys
from tests.gamification.conftest import events_of

PATH = "/api/gamification/progress/algebra-1"
MINUTE_US = 60 * 1_000_000


def module(module_id, nodes, total=None, seconds=0, current=None):
    found = {"moduleId": module_id, "completedNodes": nodes, "timeSpentSeconds": seconds}
    if total is not None:
        found["totalNodes"] = total
    if current is not None:
        found["currentNode"] = current
    return found


def test_put_get_and_percentages(alice):
    api = alice["api"]
    assert api.get(PATH).status_code == 404
    body = {
        "currentModule": "m1",
        "currentNode": "n3",
        "modules": [module("m1", ["n1", "n2", "n2"], total=4, seconds=600, current="n3"), module("m2", [], total=6)],
    }
    r = api.put(PATH, body)
    assert r.status_code == 200, r.content
    saved = api.get(PATH).json()
    assert saved["currentNode"] == "n3" and saved["currentModule"] == "m1"
    first, second = saved["modules"]
    assert (first["completedNodes"], first["completedCount"], first["percent"]) == (["n1", "n2"], 2, 50)
    assert (second["percent"], second["totalNodes"]) == (0, 6)
    assert (saved["percent"], saved["totalNodes"], saved["timeSpentSeconds"]) == (20, 10, 600)
    listed = api.get("/api/gamification/progress").json()["paths"]
    assert [p["pathId"] for p in listed] == ["algebra-1"] and "modules" not in listed[0]
    today = api.get("/api/gamification/summary").json()["stats"]["days"][-1]
    assert (today["itemsCompleted"], today["minutes"]) == (2, 10)
    assert any(kind == "progress.updated" and data["newItems"] == 2 for kind, data in events_of(alice["id"]))


def test_completed_items_earn_xp_once(alice):
    api = alice["api"]
    api.put(PATH, {"modules": [module("m1", ["n1", "n2"])]})
    xp = api.get("/api/gamification/summary").json()["xp"]["bySource"]
    assert xp["item"] == 20
    api.put(PATH, {"modules": [module("m1", [])]})  # un-complete
    api.put(PATH, {"modules": [module("m1", ["n1", "n2", "n3"])]})  # only n3 is new
    summary = api.get("/api/gamification/summary").json()
    assert summary["xp"]["bySource"]["item"] == 30
    assert summary["stats"]["days"][-1]["itemsCompleted"] == 3
    assert summary["streak"]["current"] == 1


def test_sync_merges_without_losing_either_side(alice):
    api = alice["api"]
    now = now_us()
    api.put(
        PATH,
        {
            "currentNode": "a2",
            "modules": [module("m1", ["a1", "a2"], total=5, seconds=300, current="a3")],
            "updatedAt": iso(now - 5 * MINUTE_US),
        },
    )
    offline = {
        "currentNode": "b9",
        "modules": [
            module("m1", ["a2", "b1"], total=5, seconds=200, current="b2"),
            module("m2", ["c1"], total=2, seconds=90),
        ],
        "updatedAt": iso(now - 60 * MINUTE_US),  # older than the server's state
    }
    r = api.post(f"{PATH}/sync", offline)
    assert r.status_code == 200, r.content
    merged = r.json()
    m1, m2 = merged["modules"]
    assert m1["completedNodes"] == ["a1", "a2", "b1"] and m1["timeSpentSeconds"] == 300
    assert m1["currentNode"] == "a3" and merged["currentNode"] == "a2"  # the newer side wins positions
    assert (m2["completedNodes"], m2["timeSpentSeconds"], m2["percent"]) == (["c1"], 90, 50)
    assert merged["timeSpentSeconds"] == 390 and merged["percent"] == 57

    newer = {"currentNode": "z1", "modules": [module("m1", [], current="a5", seconds=10)], "updatedAt": iso(now)}
    merged = api.post(f"{PATH}/sync", newer).json()
    assert merged["currentNode"] == "z1" and merged["modules"][0]["currentNode"] == "a5"
    assert merged["modules"][0]["completedNodes"] == ["a1", "a2", "b1"]
    assert api.get(PATH).json() == merged


def test_sync_creates_progress_that_does_not_exist(alice):
    r = alice["api"].post(f"{PATH}/sync", {"modules": [module("m1", ["n1"])]})
    assert r.status_code == 200, r.content
    assert r.json()["completedCount"] == 1


def test_others_progress_is_invisible(alice, bob):
    alice["api"].put(PATH, {"modules": [module("m1", ["n1"])]})
    assert bob["api"].get(PATH).status_code == 404
    assert bob["api"].get("/api/gamification/progress").json()["paths"] == []


def test_bad_progress_is_a_400_and_writes_nothing(alice):
    api = alice["api"]
    api.put(PATH, {"modules": [module("m1", ["n1"])]})
    before = snapshot_keys()
    cases = [
        ({"modules": [module("m1", [], seconds=-1)]}, "modules"),
        ({"modules": [module("m1", ["a", "b", "c"], total=2)]}, "modules"),
        ({"modules": [module("m1", []), module("m1", [])]}, "modules"),
        ({"modules": [module("m1", ["bad node"])]}, "modules"),
        ({"modules": [{"moduleId": "m1", "percent": 50}]}, "modules"),
        ({"modules": "m1"}, "modules"),
        ({"currentNode": "x" * 101}, "currentNode"),
        ({"updatedAt": iso(now_us() + 3600 * 1_000_000)}, "updatedAt"),
        ({"pathId": "other"}, "pathId"),
    ]
    for body, field in cases:
        for send in (api.put, lambda p, b: api.post(f"{p}/sync", b)):
            r = send(PATH, body)
            assert r.status_code == 400, (body, r.content)
            assert field in r.json()["error"]["fields"], (body, r.json())
    assert api.put("/api/gamification/progress/bad{path}", {"modules": []}).status_code == 400
    assert snapshot_keys() == before
