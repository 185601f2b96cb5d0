"""repair: clean data has no problems; data broken on purpose (as a crash between two write
steps or a bug leaves it) is reported, left alone without --fix, and healed with --fix."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from mookti import keys as mookti_keys
from mookti.redis import get_redis
from storage import keys
from storage.entities import Message, MessageLookup, compact_id, text_of
from storage.entities.records import pack
from storage.portability import repair
from storage.portability.migration.chatbot import import_chatbot
from tests.migration.conftest import state, uid
from tests.migration.test_portability import build_data


@pytest.fixture
def data(make_user, chatbot_db, prefix):
    people = build_data(make_user)
    import_chatbot(chatbot_db.options())
    return people


def kinds(report: repair.RepairReport) -> dict[str, int]:
    return dict(report.found)


def test_clean_data_has_no_problems(data):
    report = repair.run(vectors=False)
    assert report.problems == 0, [(p.kind, p.key, p.detail) for p in report.examples]
    assert report.scanned > 50


def test_index_problems_are_found_and_fixed(data):
    client = get_redis()
    alice = data["alice"]
    chats = alice["api"].get("/api/storage/chat", {"limit": 50}).json()["chats"]
    chat = next(c for c in chats if c["title"] == "Cells")
    messages = alice["api"].get("/api/storage/message", {"chatId": chat["id"]}).json()["messages"]
    document_id = alice["api"].get("/api/storage/document").json()["documents"][0]["id"]
    stamps = client.zrange(keys.document_versions(document_id), 0, -1)

    client.zrem(keys.user_chats(alice["id"]), chat["id"])  # entity missing from its index
    client.zrem(keys.chat_messages(chat["id"]), messages[0]["id"])
    client.hdel(keys.message_lookups(messages[1]["id"]), compact_id(messages[1]["id"]))  # lookup missing
    old_format = uid("b1-m1")  # a lookup as written before: a STRING (before issue 13), a bucket field
    old_value = client.hget(keys.message_lookups(old_format), compact_id(old_format))
    client.hdel(keys.message_lookups(old_format), compact_id(old_format))
    client.set(keys.old_message_chat(old_format), f"{uid('b1')}/{uid('bob')}")
    client.hset(keys.old_message_lookup_bucket("0a"), old_format, old_value)
    client.zrem(keys.document_versions(document_id), stamps[0])  # version not indexed
    client.zrem(keys.user_documents(alice["id"]), document_id)
    client.zrem(keys.users(), alice["id"])
    client.zadd(keys.users(), {"ghost-user": 1})  # index entries without entities
    client.zadd(keys.user_chats(alice["id"]), {"ghost-chat": 1})
    client.zadd(keys.chat_messages(uid("a1")), {"ghost-message": 1})
    client.hset(
        keys.message_lookups("ghost-2"), compact_id("ghost-2"), f"{uid('a1')}/{uid('alice')}"
    )  # pointing nowhere
    client.set(keys.user_email("ghost@example.com"), "ghost-user")  # claim of a missing user
    client.delete(keys.user_email("bob@example.com"))  # claim missing

    before = state()
    report = repair.run(vectors=False)
    assert state() == before  # without fix: only a report
    assert kinds(report) == {
        "entity missing from its index": 4,
        "message lookup missing or wrong": 2,
        "message lookups in the old format": 2,
        "document version not indexed": 1,
        "index entry without entity": 3,
        "message lookup pointing nowhere": 1,
        "email claim pointing to a missing user": 1,
        "email claim missing": 1,
    }
    with pytest.raises(CommandError, match="15 problems found"):
        call_command("repair", no_progress=True, no_vectors=True)

    fixed = repair.run(fix=True, vectors=False)
    assert fixed.remaining == 0 and fixed.fixed >= 15
    assert repair.run(vectors=False).problems == 0
    listed = [c["id"] for c in alice["api"].get("/api/storage/chat", {"limit": 50}).json()["chats"]]
    assert chat["id"] in listed and "ghost-chat" not in listed
    got = alice["api"].get("/api/storage/message", {"chatId": chat["id"]}).json()["messages"]
    assert [m["id"] for m in got] == [m["id"] for m in messages]
    assert alice["api"].get(f"/api/storage/message/{messages[1]['id']}").status_code == 200
    assert not client.exists(keys.old_message_chat(old_format), keys.old_message_lookup_bucket("0a"))
    assert client.hget(keys.message_lookups(old_format), compact_id(old_format)) == old_value  # written anew
    assert client.hget(keys.message_lookups("ghost-2"), compact_id("ghost-2")) is None
    assert len(alice["api"].get(f"/api/storage/document/{document_id}/versions").json()) == len(stamps)
    assert client.get(keys.user_email("bob@example.com")) == uid("bob")
    assert client.get(keys.user_email("ghost@example.com")) is None


def test_orphans_are_removed(data):
    client = get_redis()
    bob = data["bob"]
    bob_chat = bob["api"].get("/api/storage/chat").json()["chats"][0]["id"]
    client.delete(keys.user(bob["id"]))  # a user deleted half-way: chats and claim stay behind
    client.delete(keys.chat(uid("b1")))  # a chat deleted half-way: its messages stay behind
    client.hdel(keys.chat_message_data(uid("a1")), uid("a1-m2"))  # a message gone, its vote stays

    report = repair.run(vectors=False)
    found = kinds(report)
    assert found["chat without owner"] == 1
    assert found["messages without chat"] == 1  # b1's two, in one hash
    assert found["votes without chat"] == 1
    assert found["email claim pointing to a missing user"] == 1
    assert found["index entry without entity"] >= 3  # users ZSET, b1 in bob's index, a1-m2 in a1's, its vote

    call_command("repair", fix=True, no_progress=True, no_vectors=True)
    assert repair.run(vectors=False).problems == 0
    assert not client.exists(keys.chat(bob_chat), keys.chat_message_data(uid("b1")))
    assert not client.exists(keys.chat_votes(uid("b1")))
    assert client.hget(keys.message_lookups(uid("b1-m1")), compact_id(uid("b1-m1"))) is None
    assert client.hget(keys.chat_votes(uid("a1")), uid("a1-m2")) is None
    assert client.zscore(keys.users(), bob["id"]) is None
    entries = client.xrange(mookti_keys.outbox())
    assert any(e[1].get("op") == "delete_chat" and e[1].get("chatId") == bob_chat for e in entries)


def test_messages_in_the_old_layout_are_moved_by_fix(data):
    """An upgrade: messages in per-message hashes (both formats written before), their lookups in
    STRINGs and the old buckets. ``repair --fix`` moves them; then they read as before."""
    client, api = get_redis(), data["alice"]["api"]
    chat = next(c for c in api.get("/api/storage/chat", {"limit": 50}).json()["chats"] if c["title"] == "Cells")
    chat_id, long_text = chat["id"], "the numerator over the denominator " * 30
    first = api.get("/api/storage/message", {"chatId": chat_id}).json()["messages"][0]["id"]
    api.patch(f"/api/storage/message/{first}", {"parts": [{"type": "text", "text": long_text}], "content": "own"})
    api.post("/api/storage/vote", {"chatId": chat_id, "messageId": first, "type": "up"})
    before = api.get("/api/storage/message", {"chatId": chat_id}).json()["messages"]
    votes = api.get("/api/storage/vote", {"chatId": chat_id}).json()
    assert len(before) >= 2

    stored = client.hgetall(keys.chat_message_data(chat_id))
    for n, (message_id, value) in enumerate(stored.items()):
        message = Message.from_value(chat_id, message_id, value)
        if n % 2:  # the first format: ids, parts JSON and attachments always there
            old = {"id": message_id, "chatId": chat_id, "parts": json.dumps(message.parts), "attachments": "[]"}
        else:  # issue 13's compact hash: one text part as its text, packed when long
            text = text_of(message.parts)
            old = {"ztext": pack(text)} if pack(text) else {"text": text}
        if message.content != text_of(message.parts):
            old["content"] = message.content
        client.hset(
            keys.old_chat_message(chat_id, message_id),
            mapping={**old, "role": message.role, "createdAt": message.createdAt},
        )
        lookup = client.hget(keys.message_lookups(message_id), compact_id(message_id))
        client.hdel(keys.message_lookups(message_id), compact_id(message_id))
        if n % 2:
            client.set(keys.old_message_chat(message_id), f"{chat_id}/{MessageLookup.decode(lookup).ownerId}")
        else:
            client.hset(keys.old_message_lookup_bucket(f"{n:02x}"), message_id, lookup)
    client.delete(keys.chat_message_data(chat_id))

    found = kinds(repair.run(vectors=False))
    assert found["message in the old layout"] == len(stored)
    assert found["message lookups in the old format"] == len(stored)
    fixed = repair.run(fix=True, vectors=False)
    assert fixed.remaining == 0 and repair.run(vectors=False).problems == 0
    assert api.get("/api/storage/message", {"chatId": chat_id}).json()["messages"] == before
    assert api.get("/api/storage/vote", {"chatId": chat_id}).json() == votes
    for message in before:
        assert api.get(f"/api/storage/message/{message['id']}").json() == message
        assert not client.exists(keys.old_chat_message(chat_id, message["id"]), keys.old_message_chat(message["id"]))
    r = api.patch(f"/api/storage/message/{first}", {"content": "changed"})
    assert r.status_code == 200 and r.json()["parts"] == [{"type": "text", "text": long_text}]


def test_vectors_missing_or_orphaned(data, tmp_path):
    from storage.search.indexing import plan, user_subjects
    from storage.search.vectors import VectorRecord, get_vector_store, message_vector_id, user_namespace

    store_setting = {"BACKEND": "storage.search.vectors.lancedb.LanceDBVectorStore", "OPTIONS": {"path": str(tmp_path)}}
    with override_settings(MOOKTI_VECTOR_STORE=store_setting):
        store = get_vector_store()
        alice = uid("alice")
        expected = sorted({v for s in user_subjects(alice) for v in plan(alice, s).upserts})
        assert message_vector_id(uid("a1"), uid("a1-m2")) in expected
        # as an indexer that crashed would leave it: one record never written, one left over
        present = [v for v in expected if v != message_vector_id(uid("a1"), uid("a1-m2"))]
        records = [VectorRecord(v, [0.1, 0.2, 0.3], {"userId": alice}) for v in present]
        records.append(
            VectorRecord(message_vector_id(uid("a1"), "deleted-message"), [0.1, 0.2, 0.3], {"userId": alice})
        )
        store.upsert(user_namespace(alice), records)

        report = repair.run(vectors=True)
        alice_vectors = [p for p in report.examples if p.detail == f"user {alice}"]
        assert sorted((p.kind, p.key) for p in alice_vectors) == [
            ("vector missing", message_vector_id(uid("a1"), uid("a1-m2"))),
            ("vector without entity", message_vector_id(uid("a1"), "deleted-message")),
        ]
        outbox_before = get_redis().xlen(mookti_keys.outbox())
        repair.run(fix=True, vectors=True)
        entries = get_redis().xrange(mookti_keys.outbox())[outbox_before:]
        queued = {(e[1]["op"], e[1].get("messageId")) for e in entries if e[1].get("userId") == alice}
        assert queued == {("upsert", uid("a1-m2")), ("upsert", "deleted-message")}


def test_vector_check_without_a_listable_store(data):
    with override_settings(MOOKTI_VECTOR_STORE={"BACKEND": "storage.no_such_module.Store", "OPTIONS": {}}):
        report = repair.run(vectors=True)
    assert any("vectors not checked" in note for note in report.notes)
    assert report.problems == 0


def test_bare_messages_index_without_chat_or_messages_is_reported_and_removed(data):
    """Issue 12, defect 10: a ``chat:{id}:messages`` left alone by a crash is found and removed."""
    client = get_redis()
    client.zadd(keys.chat_messages("gone-chat"), {"gone-1": 1, "gone-2": 2})
    report = repair.run(vectors=False)
    flagged = [p for p in report.examples if p.key == keys.chat_messages("gone-chat")]
    assert sorted(p.detail for p in flagged) == ["message gone-1", "message gone-2"]
    repair.run(fix=True, vectors=False)
    assert not client.exists(keys.chat_messages("gone-chat"))
    assert repair.run(vectors=False).problems == 0


def test_chat_missing_from_its_index_does_not_orphan_its_vectors(data, tmp_path):
    """Issue 12, defect 10: the messages exist, so their vectors are not "without entity"."""
    from storage.search.indexing import plan, user_subjects
    from storage.search.vectors import VectorRecord, get_vector_store, user_namespace

    store_setting = {"BACKEND": "storage.search.vectors.lancedb.LanceDBVectorStore", "OPTIONS": {"path": str(tmp_path)}}
    with override_settings(MOOKTI_VECTOR_STORE=store_setting):
        alice = uid("alice")
        expected = sorted({v for s in user_subjects(alice) for v in plan(alice, s).upserts})
        assert any(v.startswith(f"msg:{uid('a1')}") for v in expected)
        store = get_vector_store()
        store.upsert(user_namespace(alice), [VectorRecord(v, [0.1, 0.2, 0.3], {"userId": alice}) for v in expected])
        get_redis().zrem(keys.user_chats(alice), uid("a1"))

        report = repair.run(vectors=True)
        assert [p.kind for p in report.examples if p.detail == f"user {alice}"] == []
        assert kinds(report)["entity missing from its index"] == 1  # (other users' vectors were never written)
        assert "vector without entity" not in kinds(report)
        repair.run(fix=True, vectors=False)
        assert get_redis().zscore(keys.user_chats(alice), uid("a1")) is not None
        assert [p for p in repair.run(vectors=True).examples if p.detail == f"user {alice}"] == []


def test_other_apps_register_their_checks(data):
    """Repair checks are registered: an app adds one without touching storage."""
    seen: list[int] = []

    def flashcards(report: repair.RepairReport) -> list[repair.Problem]:
        seen.append(report.scanned)
        return [repair.Problem("flashcard without deck", "deck:x", "", lambda w: None)]

    repair.register_check("flashcards", flashcards)
    try:
        report = repair.run(vectors=False)
    finally:
        repair._checks.pop("flashcards")
    assert seen and seen[0] > 0
    assert kinds(report) == {"flashcard without deck": 1}
