"""Concurrency and namespacing: indexes always match their entities."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import override_settings

from mookti.errors import NotFound, RateLimited
from mookti.ids import now_us
from mookti.redis import get_redis
from storage import keys
from storage.entities import MessageLookup, compact_id
from storage.managers import chats, messages, users
from storage.managers.paging import PageRequest
from storage.signals import messages_saving
from tests.conftest import delete_keys


def assert_chat_consistent(chat_id: str) -> list[str]:
    client = get_redis()
    ids = client.zrange(keys.chat_messages(chat_id), 0, -1)
    stored = client.hkeys(keys.chat_message_data(chat_id))
    pipe = client.pipeline()
    for message_id in ids:
        pipe.hget(keys.message_lookups(message_id), compact_id(message_id))
    found = [MessageLookup.decode(value) for value in pipe.execute()]
    assert sorted(stored) == sorted(ids), "index entry without message, or message without index entry"
    assert all(lookup and lookup.chatId == chat_id for lookup in found), "lookup does not point to the chat"
    assert len(set(ids)) == len(ids)
    return ids


def test_parallel_message_writes_into_one_chat(alice, settings):
    settings.MOOKTI_MESSAGE_LIMITS = {**settings.MOOKTI_MESSAGE_LIMITS, "free": 10_000}
    chat = chats.create(alice["id"], title="busy")

    def writer(thread: int) -> list[str]:
        written = []
        for i in range(50):
            saved = messages.save(
                alice["id"], [{"chatId": chat["id"], "role": "user", "parts": [], "content": f"{thread}-{i}"}]
            )
            written.append(saved[0]["id"])
        return written

    with ThreadPoolExecutor(8) as pool:
        written = [m for batch in pool.map(writer, range(8)) for m in batch]
    ids = assert_chat_consistent(chat["id"])
    assert sorted(ids) == sorted(written) and len(ids) == 400
    assert messages.count_recent(alice["id"], 24) == 400
    stored = get_redis().hget(keys.chat(chat["id"]), "lastMessageAt")
    newest = get_redis().zrange(keys.chat_messages(chat["id"]), -1, -1, withscores=True)[0][1]
    assert int(stored) == int(newest)


def test_a_save_committing_after_a_newer_one_keeps_last_message_at(alice):
    """Saves into one chat may commit in another order than they read the chat (bench/load.py, 16
    clients per user): lastMessageAt and the activity index stay at the newest message."""
    chat = chats.create(alice["id"], title="race")
    now = now_us()
    interleaved: list[bool] = []

    def message(offset_us: int) -> dict:
        return {"chatId": chat["id"], "role": "assistant", "parts": [], "createdAt": now + offset_us}

    def newer_save_commits_first(sender, **kwargs) -> None:
        if not interleaved:  # the outer save has read the chat and is about to write
            interleaved.append(True)
            messages.save(alice["id"], [message(2_000)])

    messages_saving.connect(newer_save_commits_first, dispatch_uid="test-interleave")
    try:
        messages.save(alice["id"], [message(1_000)])
    finally:
        messages_saving.disconnect(dispatch_uid="test-interleave")
    assert interleaved
    client = get_redis()
    assert int(client.hget(keys.chat(chat["id"]), "lastMessageAt")) == now + 2_000
    assert int(client.zscore(keys.user_chats_by_activity(alice["id"]), chat["id"])) == now + 2_000


def test_parallel_chat_creates_for_one_user(alice):
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda i: chats.create(alice["id"], title=f"c{i}")["id"], range(80)))
    client = get_redis()
    indexed = client.zrange(keys.user_chats(alice["id"]), 0, -1)
    assert sorted(indexed) == sorted(created)
    assert sorted(client.zrange(keys.user_chats_by_activity(alice["id"]), 0, -1)) == sorted(created)
    pipe = client.pipeline()
    for chat_id in indexed:
        pipe.hget(keys.chat(chat_id), "userId")
    assert set(pipe.execute()) == {alice["id"]}


def test_same_id_created_concurrently_has_one_winner(alice, bob):
    chat_id = str(uuid.uuid4())

    def attempt(user_id: str) -> str:
        try:
            chats.create(user_id, chat_id=chat_id)
            return "ok"
        except Exception as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, [alice["id"], bob["id"]] * 4))
    assert outcomes.count("ok") == 1
    owner = chats.get(chat_id)["userId"]
    client = get_redis()
    loser = bob["id"] if owner == alice["id"] else alice["id"]
    assert client.zscore(keys.user_chats(owner), chat_id) is not None
    assert client.zscore(keys.user_chats(loser), chat_id) is None


def test_same_code_under_another_prefix(alice):
    other = f"mookti-test:other-{uuid.uuid4().hex[:8]}:"
    try:
        with override_settings(MOOKTI_REDIS_PREFIX=other):
            user = users.create("prefix@example.com", "pw-123456")
            chat = chats.create(user["id"], title="elsewhere")
            messages.save(user["id"], [{"chatId": chat["id"], "role": "user", "parts": [], "content": "hi"}])
            chat_key = keys.chat(chat["id"])
            assert chat_key.startswith(other)
            found, _ = chats.list_for_user(user["id"], PageRequest())
            assert [c["id"] for c in found] == [chat["id"]]
        # invisible from this run's prefix, and the same email is free here
        assert chats.get(chat["id"]) is None
        assert users.get_by_email("prefix@example.com") is None
        assert get_redis().exists(chat_key)
    finally:
        assert delete_keys(other) > 0


def test_concurrent_posts_never_pass_the_daily_limit(make_user, settings):
    settings.MOOKTI_MESSAGE_LIMITS = {**settings.MOOKTI_MESSAGE_LIMITS, "free": 20}
    user = make_user()
    chat = chats.create(user["id"])

    def post(i: int) -> str:
        try:
            messages.save(user["id"], [{"chatId": chat["id"], "role": "user", "parts": [], "content": str(i)}])
            return "ok"
        except RateLimited:
            return "limited"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(post, range(60)))
    assert outcomes.count("ok") == 20
    assert len(messages.list(user["id"], chat["id"], PageRequest(limit=100, order="asc"))[0]) == 20
    assert messages.count_recent(user["id"], 24) == 20


def test_a_refused_save_gives_its_quota_back(make_user, bob, settings):
    settings.MOOKTI_MESSAGE_LIMITS = {**settings.MOOKTI_MESSAGE_LIMITS, "free": 2}
    user = make_user()
    chat = chats.create(user["id"])
    bobs_chat = chats.create(bob["id"])
    for _ in range(3):
        with pytest.raises(NotFound):
            messages.save(user["id"], [{"chatId": bobs_chat["id"], "role": "user", "parts": [], "content": "x"}])
    assert messages.count_recent(user["id"], 24) == 0
    messages.save(
        user["id"], [{"chatId": chat["id"], "role": "user", "parts": [], "content": str(i)} for i in range(2)]
    )
    assert messages.count_recent(user["id"], 24) == 2
