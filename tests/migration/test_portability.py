"""export_data / import_data: a round trip into an empty prefix reproduces every entity and
index exactly; a user's own export; the manifest guards; the checker finds differences."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from mookti.redis import get_redis
from storage.portability.migration.chatbot import import_chatbot
from storage.portability.sections import check_export, compare_prefixes, export_data, import_data, key_values
from tests.migration.conftest import state

# Not data: live-update replay logs, indexing work, API tokens.
# revision counters and stream buffers are derived or short-lived: exports leave them out
EPHEMERAL = (":events", "outbox:index", "token:{", ":tokens", ":rev", ":stream:", ":active-stream", "stream-chat:{")


def everything(prefix: str) -> dict:
    """Every key under a prefix (prefix removed) with its value, found by SCAN (not the checker's
    walk from the indexes), ephemeral keys left out."""
    with override_settings(MOOKTI_REDIS_PREFIX=prefix):
        names = get_redis().scan_iter(match=f"{prefix}*", count=1000)
        return key_values([k for k in names if not any(part in k for part in EPHEMERAL)])


def build_data(make_user) -> dict:
    """Data made through the API, with the histories a round trip must keep (edits, deletions)."""
    alice = make_user(name="Alice", timezone="Asia/Kolkata", preferences={"theme": "dark"}, user_type="pro")
    bob = make_user(name="Bob")
    api = alice["api"]
    chat = api.post("/api/storage/chat", {"title": "Cells", "visibility": "public"}).json()
    for text in ("one", "two", "three"):
        r = api.post(
            "/api/storage/message", {"chatId": chat["id"], "role": "user", "parts": [{"type": "text", "text": text}]}
        )
        assert r.status_code == 201, r.content
    messages = api.get("/api/storage/message", {"chatId": chat["id"]}).json()["messages"]
    api.patch(f"/api/storage/message/{messages[0]['id']}", {"parts": [{"type": "text", "text": "edited"}]})
    assert (
        api.post("/api/storage/vote", {"chatId": chat["id"], "messageId": messages[0]["id"], "type": "up"}).status_code
        == 200
    )
    # deleting the last message leaves lastMessageAt and the rate-limit history as they were
    query = urlencode({"chatId": chat["id"], "timestamp": messages[2]["createdAt"]})
    assert api.delete(f"/api/storage/message/after?{query}").json()["deletedCount"] == 1
    api.post(f"/api/storage/chat/{chat['id']}/streams", {"streamId": "stream-1"})
    api.post("/api/storage/chat", {"title": "Empty"})
    doc = api.post("/api/storage/document", {"title": "Essay", "kind": "text", "content": "v1"}).json()
    api.post("/api/storage/document", {"id": doc["id"], "title": "Essay 2", "kind": "code", "content": "v2"})
    api.post(
        f"/api/storage/document/{doc['id']}/suggestions", {"suggestions": [{"originalText": "v", "suggestedText": "w"}]}
    )
    bob["api"].post("/api/storage/chat", {"title": "Bob's"})
    return {"alice": alice, "bob": bob}


def test_round_trip_reproduces_every_entity_and_index(make_user, chatbot_db, prefix, other_prefix, tmp_path):
    build_data(make_user)
    import_chatbot(chatbot_db.options())
    manifest = export_data(tmp_path / "export", progress=False)
    assert manifest["users"] == 6
    with override_settings(MOOKTI_REDIS_PREFIX=other_prefix):
        report = import_data(tmp_path / "export", progress=False)
    assert report.problems == 0
    assert compare_prefixes(prefix, other_prefix) == []
    original, restored = everything(prefix), everything(other_prefix)
    assert len(original) > 40
    # gamification's section travels too: streaks, daily stats, XP, the weekly leaderboard
    assert any(k.endswith(":streak") for k in original) and any(k.startswith("leaderboard:") for k in original)
    assert manifest["sections"]["gamification"]["files"]["keys"]["records"] > 0
    assert restored == original
    # importing the same export again changes nothing
    with override_settings(MOOKTI_REDIS_PREFIX=other_prefix):
        before = state()
        again = import_data(tmp_path / "export", progress=False)
        assert state() == before
    assert sum(t.written for t in again.tables.values()) == 0
    # restored accounts still sign in with their passwords
    with override_settings(MOOKTI_REDIS_PREFIX=other_prefix):
        from storage.managers import users

        assert users.authenticate("bob@example.com", "wrong") is None


def test_one_users_export(make_user, prefix, other_prefix, tmp_path):
    people = build_data(make_user)
    alice_id, bob_id = people["alice"]["id"], people["bob"]["id"]
    call_command("export_data", output=str(tmp_path / "alice"), user=alice_id, no_progress=True)
    records = {
        p.stem: [json.loads(line) for line in p.read_text().splitlines()]
        for p in (tmp_path / "alice" / "storage").glob("*.jsonl")
    }
    assert [u["id"] for u in records["users"]] == [alice_id]
    assert {c["title"] for c in records["chats"]} == {"Cells", "Empty"}
    assert [m["content"] for m in records["messages"]] == ["edited", "two"]
    assert records["messages"][0]["createdAt"].endswith("Z") and len(records["messages"][0]["createdAt"]) == 27
    with override_settings(MOOKTI_REDIS_PREFIX=other_prefix):
        call_command("import_data", str(tmp_path / "alice"), no_progress=True)
    assert compare_prefixes(prefix, other_prefix, [alice_id]) == []
    assert f"users[{bob_id}]: only in {prefix}" in compare_prefixes(prefix, other_prefix, [bob_id])


def test_checker_reports_what_differs(make_user, prefix, tmp_path):
    people = build_data(make_user)
    export_data(tmp_path / "export", progress=False)
    assert check_export(tmp_path / "export") == []
    chat_id = people["bob"]["api"].get("/api/storage/chat").json()["chats"][0]["id"]
    people["bob"]["api"].patch(f"/api/storage/chat/{chat_id}", {"title": "Renamed"})
    get_redis().zrem(f"{prefix}user:{{{people['bob']['id']}}}:chats", chat_id)
    differences = check_export(tmp_path / "export")
    assert len(differences) == 2
    assert differences[0] == f"chat:{{{chat_id}}}: differs (fields title)"
    assert differences[1].startswith(f"user:{{{people['bob']['id']}}}:chats: only in mookti-check:")
    with pytest.raises(CommandError, match="differ in 2 keys"):
        call_command("import_data", str(tmp_path / "export"), check=True, no_progress=True)
    assert not [k for k in get_redis().scan_iter(match="mookti-check:*", count=1000)]  # scratch space removed


def write_export(root: Path, users: list[str]) -> None:
    """A hand-made export (as another tool might write one), with a correct manifest."""
    (root / "storage").mkdir(parents=True)
    body = "".join(line + "\n" for line in users)
    (root / "storage" / "users.jsonl").write_text(body)
    manifest = {
        "format": "mookti-export",
        "version": 1,
        "users": len(users),
        "sections": {
            "storage": {
                "version": 1,
                "files": {
                    "users": {
                        "path": "storage/users.jsonl",
                        "records": len(users),
                        "sha256": hashlib.sha256(body.encode()).hexdigest(),
                    }
                },
            }
        },
    }
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_bad_records_are_reported_and_the_rest_imported(prefix, tmp_path):
    good = {"id": "u-good", "email": "good@example.com", "createdAt": "2025-01-02T03:04:05.000006Z"}
    write_export(
        tmp_path / "e",
        [
            json.dumps(good),
            "{not json",
            json.dumps({"id": "u-no-time", "email": "x@example.com"}),
            json.dumps({"id": "bad id!", "email": "y@example.com", "createdAt": "2025-01-01T00:00:00Z"}),
            json.dumps(["a list"]),
        ],
    )
    report = import_data(tmp_path / "e", progress=False)
    table = report.tables["storage/users"]
    assert (table.read, table.written, table.problems) == (5, 1, 4)
    assert sorted((row, outcome.split(":")[0]) for row, outcome in table.examples) == [
        ("bad id!", "invalid id"),
        ("line 2", "invalid JSON"),
        ("line 5", "invalid record"),
        ("u-no-time", "invalid record"),
    ]
    from storage.managers import users

    assert users.get("u-good")["createdAt"] == 1735787045000006


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: (root / "manifest.json").unlink(), "has no manifest.json"),
        (lambda root: (root / "storage" / "users.jsonl").write_text("{}\n"), "does not match its checksum"),
        (lambda root: (root / "manifest.json").write_text('{"format": "mookti-export", "version": 9}'), "version 9"),
        (lambda root: (root / "manifest.json").write_text("[1, 2"), "not valid JSON"),
    ],
)
def test_damaged_exports_are_refused_before_writing(prefix, tmp_path, damage, message):
    write_export(
        tmp_path / "e", [json.dumps({"id": "u1", "email": "a@example.com", "createdAt": "2025-01-01T00:00:00Z"})]
    )
    damage(tmp_path / "e")
    before = state()
    with pytest.raises(CommandError, match=message):
        call_command("import_data", str(tmp_path / "e"), no_progress=True)
    assert state() == before


def test_export_command_line_errors(prefix, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(CommandError, match="not an empty directory"):
        call_command("export_data", output=str(tmp_path / "full"), no_progress=True)
    with pytest.raises(CommandError, match="No user with id 'nobody'"):
        call_command("export_data", output=str(tmp_path / "new"), user="nobody", no_progress=True)
    with pytest.raises(CommandError, match="not a valid id"):
        call_command("export_data", output=str(tmp_path / "new"), user="a{b}", no_progress=True)
    with pytest.raises(CommandError, match="is not a directory"):
        call_command("import_data", str(tmp_path / "missing"), no_progress=True)
    call_command("export_data", output=str(tmp_path / "empty"), no_progress=True)
    assert "Exported 0 users" in capsys.readouterr().out


def test_compare_data_command(make_user, prefix, other_prefix, capsys):
    build_data(make_user)
    call_command("compare_data", prefix)
    assert "hold the same data" in capsys.readouterr().out
    with pytest.raises(CommandError, match="differ in"):
        call_command("compare_data", other_prefix)
    assert "only in" in capsys.readouterr().out
    with pytest.raises(CommandError, match="must not contain braces"):
        call_command("compare_data", "a{b}:")


def test_an_export_cannot_name_arbitrary_keys(make_user, prefix, tmp_path):
    user = make_user()
    export_data(tmp_path / "e", user["id"], progress=False)
    path = tmp_path / "e" / "gamification" / "keys.jsonl"
    path.parent.mkdir(exist_ok=True)  # a new user has no gamification state yet
    record = {"userId": user["id"], "key": "leaderboard", "args": ["x"], "type": "string", "value": "1"}
    path.write_text(json.dumps(record) + "\n")
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    manifest["sections"]["gamification"]["files"]["keys"] = {
        "path": "gamification/keys.jsonl",
        "records": 1,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    (tmp_path / "e" / "manifest.json").write_text(json.dumps(manifest))
    report = import_data(tmp_path / "e", progress=False)
    assert (
        report.tables["gamification/keys"]
        .examples[0][1]
        .startswith("invalid record: ValueError unknown gamification key")
    )
