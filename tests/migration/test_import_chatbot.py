"""import_chatbot against a real ai-chatbot schema in Postgres: fields through the API,
idempotency, interruption and resume, dry run, --since, and bad rows reported."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from mookti.ids import iso, to_us
from storage.managers import tokens
from storage.portability.migration.chatbot import import_chatbot
from tests.conftest import Api
from tests.migration.conftest import PASSWORDS, at, bcrypt_hash, state, uid


def api_as(user_id: str) -> Api:
    return Api(tokens.issue(user_id)["token"])


def rows(db, table: str, **match: Any) -> list[dict[str, Any]]:
    return [r for r in db.rows[table] if all(r[k] == v for k, v in match.items())]


def test_import_keeps_every_field(chatbot_db, prefix):
    report = import_chatbot(chatbot_db.options())
    counts = {name: (t.read, t.written) for name, t in report.tables.items()}
    assert counts == {
        "User": (6, 4),
        "Chat": (7, 6),
        "Message_v2": (11, 7),
        "Message": (6, 3),
        "Vote_v2": (3, 2),
        "Vote": (3, 1),
        "Document": (5, 4),
        "Suggestion": (3, 2),
        "Stream": (3, 2),
    }
    assert any("lastContext" in note for note in report.notes)

    alice = api_as(uid("alice"))
    me = alice.get(f"/api/storage/user/{uid('alice')}").json()
    assert me["email"] == "alice@example.com"  # emails are stored normalized
    assert me["isGuest"] is False and me["type"] == "free"
    assert me["createdAt"] == iso(to_us(at(-100)))  # first activity: the oldest chat
    guest = api_as(uid("guest")).get(f"/api/storage/user/{uid('guest')}").json()
    assert guest["isGuest"] is True
    assert guest["createdAt"] == "2024-06-01T09:36:07.890Z"  # from its email, guest-<ms>
    with override_settings(
        PASSWORD_HASHERS=[*settings.PASSWORD_HASHERS, "storage.hashers.ChatbotBCryptPasswordHasher"]
    ):
        for name in ("alice", "bob"):  # ai-chatbot's bcrypt hashes still sign in
            r = Api().post("/api/storage/token", {"email": f"{name}@example.com", "password": PASSWORDS[name]})
            assert r.status_code == 201, r.content
            r = Api().post("/api/storage/token", {"email": f"{name}@example.com", "password": "wrong password"})
            assert r.status_code == 401
            long = PASSWORDS[name] + "x" * 80  # bcrypt reads 72 bytes (ai-chatbot's bcrypt-ts truncates silently)
            assert (
                Api().post("/api/storage/token", {"email": f"{name}@example.com", "password": long}).status_code == 401
            )

    listed = alice.get("/api/storage/chat", {"limit": 50}).json()["chats"]
    # alice-again's chat: her email differs from alice's only in case, so the accounts are merged
    assert [c["id"] for c in listed] == [uid("dup-owner"), uid("a2"), uid("a1"), uid("legacy")]
    for chat in listed:
        source = rows(chatbot_db, "Chat", id=chat["id"])[0]
        assert (chat["title"], chat["visibility"], chat["createdAt"]) == (
            source["title"],
            source["visibility"],
            iso(to_us(source["createdAt"])),
        )

    for chat_id, user in ((uid("a1"), alice), (uid("a2"), alice), (uid("b1"), api_as(uid("bob")))):
        got = user.get("/api/storage/message", {"chatId": chat_id, "limit": 100}).json()["messages"]
        expected = sorted(
            (
                r
                for r in rows(chatbot_db, "Message_v2", chatId=chat_id)
                if r["id"] not in (uid("bad-role"), uid("bad-parts"))
            ),
            key=lambda r: r["createdAt"],
        )
        assert [m["id"] for m in got] == [r["id"] for r in expected]
        for message, source in zip(got, expected, strict=True):
            assert message["role"] == source["role"]
            assert message["parts"] == source["parts"]
            assert message["attachments"] == source["attachments"]
            assert message["createdAt"] == iso(to_us(source["createdAt"]))
    assert alice.get(f"/api/storage/chat/{uid('a1')}").json()["lastMessageAt"] == iso(to_us(at(3)))

    # legacy Message rows: one turn = one assistant message, tool result folded into the call
    legacy = alice.get("/api/storage/message", {"chatId": uid("legacy"), "limit": 100}).json()["messages"]
    assert [(m["id"], m["role"]) for m in legacy] == [
        (uid("legacy-u1"), "user"),
        (uid("legacy-a1"), "assistant"),
        (uid("legacy-u2"), "user"),
    ]
    assert legacy[0]["parts"] == [{"type": "text", "text": "What's the weather?"}]
    assert legacy[1]["parts"] == [
        {
            "type": "tool-invocation",
            "toolInvocation": {
                "state": "result",
                "toolCallId": "call-1",
                "toolName": "getWeather",
                "args": {"city": "Pune"},
                "result": {"celsius": 31},
            },
        },
        {"type": "text", "text": "It is 31 degrees."},
    ]
    assert legacy[1]["content"] == "It is 31 degrees."

    assert alice.get("/api/storage/vote", {"chatId": uid("a1")}).json() == [
        {"chatId": uid("a1"), "messageId": uid("a1-m2"), "isUpvoted": True}
    ]
    assert alice.get("/api/storage/vote", {"chatId": uid("legacy")}).json() == [
        {"chatId": uid("legacy"), "messageId": uid("legacy-a1"), "isUpvoted": True}
    ]
    streams = alice.get(f"/api/storage/chat/{uid('a1')}/streams").json()
    assert [(s["id"], s["createdAt"]) for s in streams] == [
        (uid("st1"), iso(to_us(at(1.5)))),
        (uid("st2"), iso(to_us(at(3.5)))),
    ]

    versions = alice.get(f"/api/storage/document/{uid('d1')}/versions").json()
    expected_versions = rows(chatbot_db, "Document", id=uid("d1"))
    assert [(v["title"], v["content"], v["kind"], v["createdAt"]) for v in versions] == [
        (r["title"], r["content"], r["text"], iso(to_us(r["createdAt"]))) for r in expected_versions
    ]
    assert alice.get(f"/api/storage/document/{uid('d1')}").json()["title"] == "Essay (final)"
    suggestions = alice.get(f"/api/storage/document/{uid('d1')}/suggestions").json()
    for got, source in zip(suggestions, rows(chatbot_db, "Suggestion", documentId=uid("d1")), strict=True):
        assert got["id"] == source["id"]
        assert (got["originalText"], got["suggestedText"], got["description"], got["isResolved"]) == (
            source["originalText"],
            source["suggestedText"],
            source["description"],
            source["isResolved"],
        )
        assert got["documentCreatedAt"] == iso(to_us(source["documentCreatedAt"]))
        assert got["createdAt"] == iso(to_us(source["createdAt"]))
    bob_doc = api_as(uid("bob")).get(f"/api/storage/document/{uid('d2')}").json()
    assert (bob_doc["kind"], bob_doc["content"]) == ("sheet", None)


def test_bad_rows_are_reported_not_dropped(chatbot_db, prefix, tmp_path):
    report_path = tmp_path / "skipped.jsonl"
    with open(report_path, "w") as sink:
        report = import_chatbot(chatbot_db.options(report_file=sink))
    problems = {row: outcome for t in report.tables.values() for row, outcome in t.examples}
    assert problems[uid("braces")].startswith("invalid email")
    assert problems[uid("secret")] == "invalid visibility: 'secret'"
    assert problems[f"{uid('b1')}/{uid('bad-role')}"] == "invalid role: 'tool'"
    assert problems[f"{uid('b1')}/{uid('bad-parts')}"] == "invalid parts: not a list"
    assert problems[f"{uid('no-such-chat')}/{uid('orphan')}"] == f"chat not imported: {uid('no-such-chat')}"
    assert problems[f"{uid('secret')}/{uid('in-bad-chat')}"].startswith("chat not imported")
    assert problems[f"{uid('d-bad-kind')}/{to_us(at(43))}"] == "invalid kind: 'video'"
    assert problems[uid("s-bad-doc")].startswith("document version not imported")
    assert problems[uid("st-bad")].startswith("chat not imported")
    # a merged legacy row and a chat ai-chatbot had converted are skips, not problems
    assert report.tables["Message"].skipped == {
        "merged into an assistant message": 2,
        "already converted to Message_v2 by ai-chatbot": 1,
    }
    assert report.tables["Vote"].skipped["already converted to Message_v2 by ai-chatbot"] == 1
    assert report.tables["Vote"].skipped["message not imported"] == 1
    assert report.tables["User"].skipped["merged into the account with the same email"] == 1
    assert report.problems == 11
    assert len(report_path.read_text().splitlines()) == sum(sum(t.skipped.values()) for t in report.tables.values())


def test_second_run_changes_nothing(chatbot_db, prefix):
    first = import_chatbot(chatbot_db.options())
    before = state()
    second = import_chatbot(chatbot_db.options())
    assert state() == before
    assert sum(t.written for t in second.tables.values()) == 0
    assert sum(t.skipped["exists"] for t in second.tables.values()) == sum(t.written for t in first.tables.values())
    assert second.problems == first.problems


def test_dry_run_writes_nothing_and_predicts_the_run(chatbot_db, prefix):
    before = state()
    dry = import_chatbot(chatbot_db.options(dry_run=True, batch_size=1))  # what it plans carries across batches
    assert state() == before
    real = import_chatbot(chatbot_db.options())
    assert {n: (t.written, dict(t.skipped)) for n, t in dry.tables.items()} == {
        n: (t.written, dict(t.skipped)) for n, t in real.tables.items()
    }


def test_interrupted_run_resumes_where_it_stopped(chatbot_db, prefix, other_prefix):
    from storage.portability.sections import compare_prefixes

    def stop_in_messages(table: str, report) -> None:
        if table == "Message_v2" and report.read >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_chatbot(chatbot_db.options(batch_size=2), on_batch=stop_in_messages)
    resumed = import_chatbot(chatbot_db.options(batch_size=2))
    assert "resumed an interrupted run from its checkpoint" in resumed.notes
    assert resumed.tables["User"].note == "done before the interruption"
    assert resumed.tables["User"].read == 0
    assert 0 < resumed.tables["Message_v2"].read < 11  # only what was left
    with override_settings(MOOKTI_REDIS_PREFIX=other_prefix):
        import_chatbot(chatbot_db.options())
    differences = compare_prefixes(other_prefix, prefix)
    # carol has no chats or documents, so her createdAt is the time of each import
    assert len(differences) == 3 and all(uid("carol") in d for d in differences)
    again = import_chatbot(chatbot_db.options(batch_size=2))  # the checkpoint is gone: a full, no-op pass
    assert again.tables["User"].read == 6 and sum(t.written for t in again.tables.values()) == 0


def test_since_imports_only_newer_rows(chatbot_db, prefix):
    report = import_chatbot(chatbot_db.options(since=at(4)))
    assert report.tables["User"].read == 6  # users have no createdAt: always all
    assert report.tables["Chat"].read == 4  # a2, b1, secret, dup-owner
    assert {n: t.read for n, t in report.tables.items() if n in ("Message_v2", "Document", "Stream")} == {
        "Message_v2": 7,
        "Document": 5,
        "Stream": 1,
    }


def test_command_line(chatbot_db, prefix, capsys):
    call_command("import_chatbot", database_url=chatbot_db.url, schema=chatbot_db.schema, no_progress=True)
    out = capsys.readouterr().out
    assert "Message_v2: read 11, written 7, skipped 4" in out
    assert "read 47 rows, wrote 31" in out
    call_command(
        "import_chatbot", database_url=chatbot_db.url, schema=chatbot_db.schema, no_progress=True, dry_run=True
    )
    assert "Dry run: read 47 rows, would write 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"database_url": "postgresql://nobody@127.0.0.1:1/none"}, "Cannot connect to PostgreSQL"),
        ({"database_url": "not a url at all"}, "Cannot connect to PostgreSQL"),
        ({"schema": "no_such_schema"}, 'Table "User" not found in schema "no_such_schema"'),
        ({"since": "yesterday"}, "--since: 'yesterday' is not an ISO-8601"),
        ({"batch_size": 0}, "--batch-size must be between"),
    ],
)
def test_bad_input_is_a_clear_message(chatbot_db, prefix, options, message):
    options = {"database_url": chatbot_db.url, "schema": chatbot_db.schema, "no_progress": True, **options}
    before = state()
    with pytest.raises(CommandError, match=message):
        call_command("import_chatbot", **options)
    assert state() == before


def test_case_only_email_duplicates_keep_the_account_that_owns_data(chatbot_db, prefix):
    """Issue 12, defect 9: the lower id no longer wins; the data owner stays and nothing is dropped."""
    lower, owner = "00000000-0000-4000-8000-000000000001", "fffffffe-ffff-4fff-bfff-ffffffffffff"
    chatbot_db.insert(
        "User",
        {"id": lower, "email": "Zed@Example.com", "password": None},
        {"id": owner, "email": "zed@example.com", "password": bcrypt_hash("zed password", b"2b")},
    )
    chatbot_db.insert(
        "Chat", {"id": uid("zed-chat"), "createdAt": at(30), "userId": owner, "title": "Zed's", "visibility": "private"}
    )
    report = import_chatbot(chatbot_db.options())
    problems = {row: outcome for t in report.tables.values() for row, outcome in t.examples}
    assert uid("zed-chat") not in problems
    assert report.tables["User"].skipped["merged into the account with the same email"] == 2  # alice-again too
    assert any(lower in note and owner in note and "differ only in case" in note for note in report.notes)
    zed = api_as(owner)
    assert zed.get(f"/api/storage/user/{owner}").json()["email"] == "zed@example.com"
    assert [c["id"] for c in zed.get("/api/storage/chat").json()["chats"]] == [uid("zed-chat")]
    assert Api(settings.MOOKTI_SERVICE_KEY).get(f"/api/storage/user/{lower}").status_code == 404
    assert import_chatbot(chatbot_db.options()).problems == report.problems  # a second run agrees
