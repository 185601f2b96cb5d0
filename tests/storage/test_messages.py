"""Messages and votes: saveMessages, getMessagesByChatId, updateMessage, trailing deletes, counts."""

from __future__ import annotations

import pytest

from mookti.ids import now_us
from mookti.redis import get_redis
from storage import keys

T0 = 1_760_000_000_000  # epoch ms


@pytest.fixture
def chat(alice):
    return alice["api"].post("/api/storage/chat", {"title": "Algebra"}).json()


def save(api, chat_id, *specs):
    body = {
        "messages": [
            {"chatId": chat_id, "role": role, "content": text, **({"createdAt": at} if at else {})}
            for role, text, at in specs
        ]
    }
    r = api.post("/api/storage/message", body)
    assert r.status_code == 201, r.content
    return r.json()


def test_bulk_save_keeps_parts_attachments_and_derives_content(alice, chat):
    parts = [
        {"type": "text", "text": "What is x"},
        {"type": "reasoning", "text": "hidden"},
        {"type": "text", "text": "?"},
    ]
    r = alice["api"].post(
        "/api/storage/message",
        {
            "messages": [
                {"id": "m-1", "chatId": chat["id"], "role": "user", "parts": parts, "attachments": [{"url": "u"}]},
                {"id": "m-2", "chatId": chat["id"], "role": "assistant", "parts": [{"type": "text", "text": "4"}]},
            ]
        },
    )
    assert r.status_code == 201, r.content
    first = alice["api"].get("/api/storage/message/m-1").json()
    assert first["parts"] == parts
    assert first["attachments"] == [{"url": "u"}]
    assert first["content"] == "What is x\n?"
    assert first["chatId"] == chat["id"]
    chat_after = alice["api"].get(f"/api/storage/chat/{chat['id']}").json()
    assert chat_after["lastMessageAt"] is not None


def test_messages_oldest_first_and_paginated(alice, chat):
    save(
        alice["api"],
        chat["id"],
        ("user", "one", T0 + 3000),
        ("assistant", "two", T0 + 1000),
        ("user", "three", T0 + 2000),
    )
    r = alice["api"].get("/api/storage/message", {"chatId": chat["id"]})
    assert [m["content"] for m in r.json()["messages"]] == ["two", "three", "one"]
    first = alice["api"].get("/api/storage/message", {"chatId": chat["id"], "limit": 2}).json()
    assert [m["content"] for m in first["messages"]] == ["two", "three"] and first["hasMore"] is True
    last_id = first["messages"][-1]["id"]
    rest = alice["api"].get("/api/storage/message", {"chatId": chat["id"], "startingAfter": last_id}).json()
    assert [m["content"] for m in rest["messages"]] == ["one"] and rest["hasMore"] is False


def test_timestamps_are_iso_utc(alice, chat):
    msg = save(alice["api"], chat["id"], ("user", "t", "2026-03-01T10:00:00.123+02:00"))[0]
    assert msg["createdAt"] == "2026-03-01T08:00:00.123Z"


def test_update_message_parts(alice, chat):
    msg = save(alice["api"], chat["id"], ("assistant", "draft", T0))[0]
    r = alice["api"].patch(f"/api/storage/message/{msg['id']}", {"parts": [{"type": "text", "text": "final"}]})
    assert r.status_code == 200, r.content
    assert r.json()["content"] == "final"
    assert alice["api"].get(f"/api/storage/message/{msg['id']}").json()["parts"] == [{"type": "text", "text": "final"}]


def test_delete_after_timestamp_is_inclusive_and_takes_votes(alice, chat):
    kept, at, later = save(
        alice["api"], chat["id"], ("user", "a", T0), ("assistant", "b", T0 + 1000), ("user", "c", T0 + 2000)
    )
    for m in (kept, at, later):
        alice["api"].post("/api/storage/vote", {"chatId": chat["id"], "messageId": m["id"], "type": "down"})
    r = alice["api"].delete(f"/api/storage/message/after?chatId={chat['id']}&timestamp={at['createdAt']}")
    assert r.status_code == 200, r.content
    assert sorted(r.json()["deletedIds"]) == sorted([at["id"], later["id"]])
    remaining = alice["api"].get("/api/storage/message", {"chatId": chat["id"]}).json()["messages"]
    assert [m["id"] for m in remaining] == [kept["id"]]
    votes = alice["api"].get("/api/storage/vote", {"chatId": chat["id"]}).json()
    assert [v["messageId"] for v in votes] == [kept["id"]]
    assert get_redis().hget(keys.message_lookups(at["id"]), at["id"]) is None


def test_votes_upsert(alice, chat):
    msg = save(alice["api"], chat["id"], ("assistant", "a", T0))[0]
    body = {"chatId": chat["id"], "messageId": msg["id"], "type": "up"}
    assert alice["api"].post("/api/storage/vote", body).json()["isUpvoted"] is True
    assert alice["api"].post("/api/storage/vote", {**body, "type": "down"}).json()["isUpvoted"] is False
    votes = alice["api"].get("/api/storage/vote", {"chatId": chat["id"]}).json()
    assert votes == [{"chatId": chat["id"], "messageId": msg["id"], "isUpvoted": False}]


def test_vote_on_unknown_message_is_404(alice, chat):
    r = alice["api"].post("/api/storage/vote", {"chatId": chat["id"], "messageId": "nope", "type": "up"})
    assert r.status_code == 404


def test_count_counts_own_user_messages_in_window(alice, chat):
    save(alice["api"], chat["id"], ("user", "a", None), ("assistant", "b", None), ("user", "c", None))
    r = alice["api"].get("/api/storage/message/count", {"hours": 24})
    assert r.json()["count"] == 2


def test_duplicate_message_id_is_conflict(alice, bob, chat):
    save(alice["api"], chat["id"], ("user", "a", T0))
    existing = alice["api"].get("/api/storage/message", {"chatId": chat["id"]}).json()["messages"][0]["id"]
    bobs = bob["api"].post("/api/storage/chat", {}).json()
    r = bob["api"].post("/api/storage/message", {"id": existing, "chatId": bobs["id"], "role": "user", "content": "x"})
    assert r.status_code == 409
    assert alice["api"].get(f"/api/storage/message/{existing}").json()["content"] == "a"


def test_rate_limit_by_user_type(make_user, settings):
    settings.MOOKTI_MESSAGE_LIMITS = {**settings.MOOKTI_MESSAGE_LIMITS, "free": 3}
    user = make_user()
    chat = user["api"].post("/api/storage/chat", {}).json()
    save(user["api"], chat["id"], ("user", "1", None), ("user", "2", None), ("assistant", "ok", None))
    save(user["api"], chat["id"], ("user", "3", None))
    r = user["api"].post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "4"})
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "rate_limit:chat"
    # assistant messages are not limited
    assert (
        user["api"]
        .post("/api/storage/message", {"chatId": chat["id"], "role": "assistant", "content": "x"})
        .status_code
        == 201
    )


def test_message_pages_with_equal_timestamps(alice, chat):
    saved = save(alice["api"], chat["id"], *[("user", str(i), T0) for i in range(5)])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"chatId": chat["id"], "limit": 2, **({"startingAfter": cursor} if cursor else {})}
        page = alice["api"].get("/api/storage/message", params).json()
        seen += [m["id"] for m in page["messages"]]
        if not page["hasMore"]:
            break
        cursor = seen[-1]
    assert sorted(seen) == sorted(m["id"] for m in saved) and len(seen) == 5


# --- the compact hash (issue 13): ids in the key, one text part kept as its text, long text deflated
def test_a_message_hash_holds_neither_its_ids_nor_a_second_copy_of_its_text(alice, chat):
    api, long_text = alice["api"], "the numerator over the denominator " * 30
    short, long, parted = (
        api.post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": text}).json()[0]
        for text in ("a short question", long_text, "x")
    )
    raw = get_redis().hgetall(keys.chat_message(chat["id"], short["id"]))
    assert set(raw) == {"role", "text", "createdAt"} and raw["text"] == "a short question"
    packed = get_redis().hgetall(keys.chat_message(chat["id"], long["id"]))
    assert set(packed) == {"role", "ztext", "createdAt"} and len(packed["ztext"]) < len(long_text) / 2
    got = api.get(f"/api/storage/message/{long['id']}").json()
    assert got["parts"] == [{"type": "text", "text": long_text}] and got["content"] == long_text
    assert got["id"] == long["id"] and got["chatId"] == chat["id"] and got["attachments"] == []

    # parts that are not one text part are kept as JSON; content alone changes only content
    parts = [{"type": "text", "text": "two"}, {"type": "reasoning", "text": "parts"}]
    r = api.patch(f"/api/storage/message/{parted['id']}", {"parts": parts})
    assert r.status_code == 200, r.content
    raw = get_redis().hgetall(keys.chat_message(chat["id"], parted["id"]))
    assert "text" not in raw and "ztext" not in raw and r.json()["parts"] == parts
    r = api.patch(f"/api/storage/message/{short['id']}", {"content": "a summary"})
    assert r.status_code == 200 and r.json()["parts"] == [{"type": "text", "text": "a short question"}]
    assert r.json()["content"] == "a summary"
    r = api.patch(f"/api/storage/message/{long['id']}", {"parts": [{"type": "text", "text": "shorter"}]})
    assert get_redis().hgetall(keys.chat_message(chat["id"], long["id"])).keys() == {"role", "text", "createdAt"}
    listed = api.get(f"/api/storage/message?chatId={chat['id']}").json()["messages"]
    assert [m["content"] for m in listed] == ["a summary", "shorter", "two"]


def test_a_message_stored_in_the_old_format_reads_the_same(alice, chat):
    """Hashes written before the compact format (ids, parts JSON and attachments always present)."""
    api = alice["api"]
    parts = '[{"type":"text","text":"from before"}]'
    old = {"id": "old-1", "chatId": chat["id"], "role": "user", "parts": parts, "attachments": "[]"}
    client = get_redis()
    client.hset(keys.chat_message(chat["id"], "old-1"), mapping={**old, "createdAt": T0 * 1000})
    client.zadd(keys.chat_messages(chat["id"]), {"old-1": T0 * 1000})
    client.set(keys.message_chat("old-1"), f"{chat['id']}/{alice['id']}")
    got = api.get("/api/storage/message/old-1").json()
    assert got["parts"] == [{"type": "text", "text": "from before"}] and got["content"] == "from before"
    assert got["chatId"] == chat["id"] and got["role"] == "user"
    r = api.patch("/api/storage/message/old-1", {"parts": [{"type": "text", "text": "rewritten"}]})
    assert r.status_code == 200 and r.json()["content"] == "rewritten"
    assert "parts" not in client.hgetall(keys.chat_message(chat["id"], "old-1"))  # the new format from now on


def test_the_rate_limit_log_holds_message_ids_and_still_counts_old_members(alice, chat):
    api, times = alice["api"], keys.user_message_times(alice["id"])
    old_member = f"{chat['id']}/an-old-message"  # the member format before issue 13
    get_redis().zadd(times, {old_member: now_us()})
    saved = save(api, chat["id"], ("user", "q", None), ("assistant", "a", None))
    assert set(get_redis().zrange(times, 0, -1)) == {old_member, saved[0]["id"]}
    assert api.get("/api/storage/message/count?hours=24").json()["count"] == 2
