"""Messages and votes: saveMessages, getMessagesByChatId, updateMessage, trailing deletes, counts."""

from __future__ import annotations

import pytest

from mookti.ids import now_us
from mookti.redis import get_redis
from storage import keys
from storage.entities import compact_id

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
    assert get_redis().hget(keys.message_lookups(at["id"]), compact_id(at["id"])) is None
    assert get_redis().hkeys(keys.chat_message_data(chat["id"])) == [kept["id"]]


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


# --- the compact value: ids in the key and field, one text part kept as its text, long text deflated
def test_a_message_value_holds_neither_its_ids_nor_a_second_copy_of_its_text(alice, chat):
    api, long_text = alice["api"], "the numerator over the denominator " * 30
    short, long, parted = (
        api.post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": text}).json()[0]
        for text in ("a short question", long_text, "x")
    )

    def stored(message):
        return get_redis().hget(keys.chat_message_data(chat["id"]), message["id"])

    assert stored(short).startswith("ut") and stored(short).endswith(":a short question")
    assert len(stored(short)) <= len("a short question") + 13
    assert stored(long).startswith("uT") and len(stored(long)) < len(long_text) / 2
    got = api.get(f"/api/storage/message/{long['id']}").json()
    assert got["parts"] == [{"type": "text", "text": long_text}] and got["content"] == long_text
    assert got["id"] == long["id"] and got["chatId"] == chat["id"] and got["attachments"] == []

    # parts that are not one text part are kept as JSON; content alone changes only content
    parts = [{"type": "text", "text": "two"}, {"type": "reasoning", "text": "parts"}]
    r = api.patch(f"/api/storage/message/{parted['id']}", {"parts": parts})
    assert r.status_code == 200, r.content
    assert stored(parted).startswith("up") and r.json()["parts"] == parts
    r = api.patch(f"/api/storage/message/{short['id']}", {"content": "a summary"})
    assert r.status_code == 200 and r.json()["parts"] == [{"type": "text", "text": "a short question"}]
    assert r.json()["content"] == "a summary" and stored(short).endswith(":a summarya short question")
    r = api.patch(f"/api/storage/message/{long['id']}", {"parts": [{"type": "text", "text": "shorter"}]})
    assert stored(long).startswith("ut") and stored(long).endswith(":shorter")
    listed = api.get(f"/api/storage/message?chatId={chat['id']}").json()["messages"]
    assert [m["content"] for m in listed] == ["a summary", "shorter", "two"]
    assert [m["createdAt"] for m in listed] == [m["createdAt"] for m in (short, long, parted)]  # kept by updates


def test_an_update_keeps_what_it_does_not_name(alice, chat):
    api = alice["api"]
    attachments = [{"url": "https://x.test/a.png", "name": "ä.png", "contentType": "image/png"}]
    body = {"chatId": chat["id"], "role": "assistant", "content": "own ✓", "attachments": attachments}
    saved = api.post("/api/storage/message", {**body, "parts": [{"type": "text", "text": "text ✓"}]}).json()[0]
    url = f"/api/storage/message/{saved['id']}"
    r = api.patch(url, {"attachments": []})
    assert r.json() == {**saved, "attachments": []}
    r = api.patch(url, {"parts": [{"type": "text", "text": "new"}], "attachments": attachments})
    assert r.json() == {**saved, "parts": [{"type": "text", "text": "new"}], "content": "new"}  # its text again
    assert api.get(url).json() == r.json()


def test_the_rate_limit_log_holds_message_ids_and_still_counts_old_members(alice, chat):
    api, times = alice["api"], keys.user_message_times(alice["id"])
    old_member = f"{chat['id']}/an-old-message"  # the member format before issue 13
    get_redis().zadd(times, {old_member: now_us()})
    saved = save(api, chat["id"], ("user", "q", None), ("assistant", "a", None))
    assert set(get_redis().zrange(times, 0, -1)) == {old_member, saved[0]["id"]}
    assert api.get("/api/storage/message/count?hours=24").json()["count"] == 2
