"""Chats: ai-chatbot's saveChat/getChatsByUserId/... semantics over HTTP."""

from __future__ import annotations

import time

import pytest

from mookti.redis import get_redis
from storage import keys
from storage.entities import compact_id


@pytest.fixture
def five_chats(alice):
    """Five chats created one after another: c0 oldest ... c4 newest."""
    ids = []
    for i in range(5):
        r = alice["api"].post("/api/storage/chat", {"title": f"chat {i}", "createdAt": 1_700_000_000_000 + i * 1000})
        assert r.status_code == 201, r.content
        ids.append(r.json()["id"])
    return ids


def ids_of(response):
    assert response.status_code == 200, response.content
    return [c["id"] for c in response.json()["chats"]]


def test_create_with_client_id_and_defaults(alice):
    r = alice["api"].post("/api/storage/chat", {"id": "3f1c2a9e-1111-4aaa-8bbb-123456789abc"})
    assert r.status_code == 201
    chat = r.json()
    assert chat == {
        "id": "3f1c2a9e-1111-4aaa-8bbb-123456789abc",
        "userId": alice["id"],
        "title": "New chat",
        "visibility": "private",
        "createdAt": chat["createdAt"],
        "lastMessageAt": None,
    }
    again = alice["api"].post("/api/storage/chat", {"id": "3f1c2a9e-1111-4aaa-8bbb-123456789abc"})
    assert again.status_code == 409


def test_list_newest_first_with_has_more(alice, five_chats):
    r = alice["api"].get("/api/storage/chat", {"limit": 2})
    assert ids_of(r) == [five_chats[4], five_chats[3]]
    assert r.json()["hasMore"] is True
    r = alice["api"].get("/api/storage/chat", {"limit": 5})
    assert ids_of(r) == five_chats[::-1]
    assert r.json()["hasMore"] is False


def test_ending_before_pages_through_older_chats(alice, five_chats):
    r = alice["api"].get("/api/storage/chat", {"limit": 2, "endingBefore": five_chats[3]})
    assert ids_of(r) == [five_chats[2], five_chats[1]]
    assert r.json()["hasMore"] is True
    r = alice["api"].get("/api/storage/chat", {"limit": 2, "endingBefore": five_chats[1]})
    assert ids_of(r) == [five_chats[0]]
    assert r.json()["hasMore"] is False


def test_starting_after_gives_newer_chats_newest_first(alice, five_chats):
    # ai-chatbot: createdAt > cursor's, ordered createdAt DESC, limit + 1
    r = alice["api"].get("/api/storage/chat", {"limit": 2, "startingAfter": five_chats[1]})
    assert ids_of(r) == [five_chats[4], five_chats[3]]
    assert r.json()["hasMore"] is True


def test_unknown_cursor_is_404(alice, five_chats):
    r = alice["api"].get("/api/storage/chat", {"endingBefore": "no-such-chat"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found:chat"


def test_order_by_last_message(alice, five_chats):
    alice["api"].post("/api/storage/message", {"chatId": five_chats[0], "role": "user", "content": "bump"})
    r = alice["api"].get("/api/storage/chat", {"orderBy": "lastMessageAt", "limit": 2})
    assert ids_of(r)[0] == five_chats[0]


def test_update_title_and_visibility(alice):
    chat = alice["api"].post("/api/storage/chat", {"title": "a"}).json()
    r = alice["api"].patch(f"/api/storage/chat/{chat['id']}", {"title": "Fractions", "visibility": "public"})
    assert r.status_code == 200
    got = alice["api"].get(f"/api/storage/chat/{chat['id']}").json()
    assert got["title"] == "Fractions" and got["visibility"] == "public"


def test_delete_chat_cascades(alice):
    api = alice["api"]
    chat = api.post("/api/storage/chat", {}).json()
    msg = api.post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "q"}).json()[0]
    api.post("/api/storage/vote", {"chatId": chat["id"], "messageId": msg["id"], "type": "up"})
    api.post(f"/api/storage/chat/{chat['id']}/streams", {"streamId": "stream-1"})
    r = api.delete(f"/api/storage/chat/{chat['id']}")
    assert r.status_code == 200 and r.json()["id"] == chat["id"]
    client = get_redis()
    assert not client.exists(
        keys.chat(chat["id"]),
        keys.chat_messages(chat["id"]),
        keys.chat_message_data(chat["id"]),
        keys.chat_votes(chat["id"]),
        keys.chat_streams(chat["id"]),
    )
    assert client.hget(keys.message_lookups(msg["id"]), compact_id(msg["id"])) is None
    assert client.zscore(keys.user_chats(alice["id"]), chat["id"]) is None
    assert api.get(f"/api/storage/chat/{chat['id']}").status_code == 404
    assert api.get(f"/api/storage/message/{msg['id']}").status_code == 404


def test_delete_all_chats_of_user(alice, bob, five_chats):
    bobs = bob["api"].post("/api/storage/chat", {}).json()
    r = alice["api"].delete("/api/storage/chat/all")
    assert r.status_code == 200 and r.json() == {"deletedCount": 5}
    assert ids_of(alice["api"].get("/api/storage/chat")) == []
    assert bob["api"].get(f"/api/storage/chat/{bobs['id']}").status_code == 200


def test_stream_ids_oldest_first(alice):
    chat = alice["api"].post("/api/storage/chat", {}).json()
    for sid in ("s-1", "s-2"):
        assert alice["api"].post(f"/api/storage/chat/{chat['id']}/streams", {"streamId": sid}).status_code == 201
        time.sleep(0.002)
    r = alice["api"].get(f"/api/storage/chat/{chat['id']}/streams")
    assert [s["id"] for s in r.json()] == ["s-1", "s-2"]


def test_pages_reach_every_chat_when_timestamps_tie(alice):
    same = "2026-01-01T00:00:00.000Z"
    created = {alice["api"].post("/api/storage/chat", {"createdAt": same}).json()["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"endingBefore": cursor} if cursor else {})}
        page = alice["api"].get("/api/storage/chat", params).json()
        seen += [c["id"] for c in page["chats"]]
        if not page["hasMore"]:
            break
        cursor = seen[-1]
    assert sorted(seen) == sorted(created) and len(seen) == 5
