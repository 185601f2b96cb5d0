"""Writes re-run in their ``Idempotency-Key`` scope apply nothing twice, standalone and on a cluster.

A retry whose first attempt failed after Redis applied the write (a 5xx, so no stored answer)
re-runs the request in the same scope: same ids, same times, and each write's guard makes what
the first attempt applied a no-op. On a cluster a write runs step by step, each step guarded in
its own slot, so a first attempt cut off between steps is completed by the retry, not repeated.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from mookti import events
from mookti.errors import Conflict
from mookti.ids import Scope, idempotency_scope
from mookti.redis import Write, get_redis, is_cluster, key
from storage import keys
from storage.managers import chats, users


def attempt(token: str, start_ms: int):
    """The scope one attempt of a request runs in (each attempt counts its ids and writes anew)."""
    return idempotency_scope(Scope(token=token, start_ms=start_ms))


def counters(*names: str) -> list[int]:
    return [int(get_redis().get(key(name)) or 0) for name in names]


NAMES = ("idem:{a}:n", "idem:{b}:n", "idem:{c}:n")  # three hash tags: three slots on a cluster


def incr_write(names: tuple[str, ...]) -> Write:
    write = Write()
    for full_key in map(key, names):
        write.step(lambda p, k=full_key: p.incr(k))
    return write


def test_a_write_re_run_in_its_scope_is_applied_once():
    token, start = uuid.uuid4().hex, int(time.time() * 1000)
    names = tuple(f"{n}:{token}" for n in NAMES)
    with attempt(token, start):
        first = incr_write(names)
        assert first.execute() == [[1], [1], [1]] and not first.applied_before
    with attempt(token, start):
        again = incr_write(names)
        again.execute()
        assert again.applied_before
    assert counters(*names) == [1, 1, 1]
    with attempt(uuid.uuid4().hex, start):  # another request is another write
        incr_write(names).execute()
    assert counters(*names) == [2, 2, 2]


def test_a_write_cut_off_between_steps_is_completed_by_the_retry():
    if not is_cluster():
        pytest.skip("standalone, a write is one MULTI/EXEC: it cannot stop between steps")
    token, start = uuid.uuid4().hex, int(time.time() * 1000)
    names = tuple(f"{n}:{token}" for n in NAMES)
    with attempt(token, start):  # the first attempt got through its first step only
        incr_write(names[:1]).execute()
    with attempt(token, start):
        retry = incr_write(names)
        replies = retry.execute()
    assert retry.applied_before and replies == [[None], [1], [1]]
    assert counters(*names) == [1, 1, 1]


def test_a_chat_creation_re_run_is_one_chat_and_one_event(alice):
    user_id = alice["id"]
    token, start = uuid.uuid4().hex, int(time.time() * 1000)
    with attempt(token, start):
        first = chats.create(user_id, title="Once")
    with attempt(token, start):
        again = chats.create(user_id, title="Once")
    assert again == first
    assert get_redis().zrange(keys.user_chats(user_id), 0, -1) == [first["id"]]
    created = [json.loads(data)["id"] for _, event_type, data in events.read(user_id) if event_type == "chat.created"]
    assert created == [first["id"]]
    with pytest.raises(Conflict):  # the same id asked for by another request is taken
        chats.create(user_id, chat_id=first["id"], title="Taken")
    assert chats.get(first["id"])["title"] == "Once"


def test_a_user_creation_re_run_is_one_user():
    email = f"once-{uuid.uuid4().hex[:8]}@example.com"
    token, start = uuid.uuid4().hex, int(time.time() * 1000)
    with attempt(token, start):
        first = users.create(email, "pw-123456")
    with attempt(token, start):
        again = users.create(email, "pw-123456")
    try:
        assert again == first
        assert get_redis().zscore(keys.users(), first["id"]) is not None
        with attempt(uuid.uuid4().hex, start), pytest.raises(Conflict) as taken:
            users.create(email, "pw-123456", user_id=first["id"])  # another request, same id and email
        assert "email" in taken.value.fields
        with pytest.raises(Conflict) as taken:
            users.create(f"other-{email}", "pw-123456", user_id=first["id"])
        assert "id" in taken.value.fields
        assert get_redis().get(keys.user_email(f"other-{email}")) is None  # its claim was given back
    finally:
        users.delete(first["id"])


def test_a_key_used_again_with_another_body_is_a_422_and_writes_nothing(alice):
    api, user_id = alice["api"], alice["id"]
    first = api.post("/api/storage/chat", {"title": "First"}, HTTP_IDEMPOTENCY_KEY="one-request")
    assert first.status_code == 201, first.content
    chats_before = get_redis().zcard(keys.user_chats(user_id))
    other = api.post("/api/storage/chat", {"title": "Another"}, HTTP_IDEMPOTENCY_KEY="one-request")
    assert other.status_code == 422, other.content
    assert other.json()["error"]["code"] == "unprocessable:idempotency"
    assert "Idempotency-Key" in other.json()["error"]["fields"]
    assert get_redis().zcard(keys.user_chats(user_id)) == chats_before
    same = api.post("/api/storage/chat", {"title": "First"}, HTTP_IDEMPOTENCY_KEY="one-request")
    assert same.status_code == 201 and same.json() == first.json() and same["Idempotent-Replayed"] == "true"
