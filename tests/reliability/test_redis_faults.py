"""Redis frozen, killed and full, against a redis-server each test starts itself.

- A write stuck in a frozen Redis (its MULTI/EXEC sent, no answer) fails the request with a 503
  and is applied once when Redis resumes: never re-sent blindly; a retry with the same
  ``Idempotency-Key`` is a no-op that answers with what the first attempt stored.
- A full Redis answers 507 with a message that says so (and logs what the operator can do);
  deletes still work, so space can be freed through the API.
- A websocket opened while Redis is down is closed with 1013 (try again later), not a crash.
- The short version of ``bench/faults.py``: a web process and an indexer under write load
  through a kill -9 and a freeze: nothing lost, nothing applied twice, both processes still
  running, repair finds nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import time
import uuid
from typing import Any

import pytest
from django.test import override_settings

from mookti import events
from mookti.redis import close_clients, get_redis
from storage import keys, signals
from storage.managers import chats, tokens, users
from tests.conftest import Api


@pytest.fixture
def fast_timeouts(settings):
    """Short command timeouts so a freeze costs the test little; clients are rebuilt with them."""
    settings.MOOKTI_REDIS_TIMEOUT = 0.5
    settings.MOOKTI_REDIS_BREAKER_SECONDS = 0.2
    close_clients()
    yield
    close_clients()


@pytest.fixture
def learner(private_redis, fast_timeouts) -> dict[str, Any]:
    user = users.create(f"{uuid.uuid4().hex[:8]}@example.com", "pw-123456", user_type="pro")
    chat = chats.create(user["id"], title="Frozen")
    return {"user": user, "chat": chat, "api": Api(tokens.issue(user["id"])["token"])}


def _wait_answering() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            get_redis().ping()
            return
        except Exception:
            time.sleep(0.05)
    raise AssertionError("Redis did not come back")


def _freeze_before_the_write(process) -> list[int]:
    """Freeze Redis once, right before a message save sends its MULTI/EXEC (after its reads)."""
    frozen: list[int] = []

    def freeze(**kwargs: Any) -> None:
        if not frozen:
            frozen.append(process.pid)
            os.kill(process.pid, signal.SIGSTOP)

    signals.messages_saving.connect(freeze, weak=False, dispatch_uid="freeze-before-write")
    return frozen


def _stored(chat_id: str, user_id: str) -> tuple[list[str], list[str]]:
    """(message ids in the chat's index, message ids of the user's message.created events)."""
    client = get_redis()
    indexed = client.zrange(keys.chat_messages(chat_id), 0, -1)
    created = [
        json.loads(data)["id"] for _, event_type, data in events.read(user_id) if event_type == "message.created"
    ]
    return indexed, created


@pytest.mark.parametrize("with_key", [True, False], ids=["idempotency-key", "no-key"])
def test_a_write_stuck_in_a_frozen_redis_is_applied_once(private_redis, learner, with_key):
    chat, user, api = learner["chat"], learner["user"], learner["api"]
    headers = {"HTTP_IDEMPOTENCY_KEY": "retry-me-1"} if with_key else {}
    body = {"chatId": chat["id"], "role": "user", "parts": [{"type": "text", "text": "stuck"}]}
    frozen = _freeze_before_the_write(private_redis["process"])
    try:
        first = api.post("/api/storage/message", body, **headers)
        assert frozen and first.status_code == 503, first.content
        assert first.json()["error"]["code"] == "unavailable:database"
        during = api.post("/api/storage/message", body, **headers)  # a client retrying at once
        assert during.status_code == 503 and during.json()["error"]["code"] == "unavailable:database"
    finally:
        signals.messages_saving.disconnect(dispatch_uid="freeze-before-write")
        os.kill(private_redis["process"].pid, signal.SIGCONT)
    _wait_answering()

    indexed, created = _stored(chat["id"], user["id"])
    # the MULTI/EXEC sent before the freeze ran when Redis resumed, once: the client re-sent nothing
    assert len(indexed) == 1 and created == indexed
    if with_key:
        retried = api.post("/api/storage/message", body, **headers)
        assert retried.status_code == 201, retried.content
        assert [m["id"] for m in retried.json()] == indexed  # the first attempt's message, not a new one
        again = api.post("/api/storage/message", body, **headers)
        assert again.status_code == 201 and again.json() == retried.json()
        assert again["Idempotent-Replayed"] == "true"
        assert _stored(chat["id"], user["id"]) == (indexed, created)
        assert get_redis().zcard(keys.user_message_times(user["id"])) == 1  # the quota was counted once


def test_a_replayed_chat_creation_is_one_chat(private_redis, learner):
    api, user = learner["api"], learner["user"]
    first = api.post("/api/storage/chat", {"title": "Once"}, HTTP_IDEMPOTENCY_KEY="chat-1")
    again = api.post("/api/storage/chat", {"title": "Once"}, HTTP_IDEMPOTENCY_KEY="chat-1")
    other = api.post("/api/storage/chat", {"title": "Once"}, HTTP_IDEMPOTENCY_KEY="chat-2")
    assert first.status_code == again.status_code == other.status_code == 201
    assert again.json() == first.json() and other.json()["id"] != first.json()["id"]
    listed = [c["id"] for c in api.get("/api/storage/chat").json()["chats"]]
    assert sorted(listed) == sorted([learner["chat"]["id"], first.json()["id"], other.json()["id"]])
    taken = api.post("/api/storage/chat", {"id": first.json()["id"], "title": "Taken"})
    assert taken.status_code == 409  # create-if-absent, hash and indexes in one step: nothing written
    assert chats.get(first.json()["id"])["title"] == "Once"
    assert get_redis().zcard(keys.user_chats(user["id"])) == 3


def test_a_bad_idempotency_key_is_a_400_naming_the_header(learner):
    response = learner["api"].post("/api/storage/chat", {"title": "x"}, HTTP_IDEMPOTENCY_KEY="has space")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]


def test_a_killed_redis_is_a_503_json_and_the_api_comes_back(private_redis, learner, caplog):
    from mookti import localredis

    api = learner["api"]
    private_redis["process"].send_signal(signal.SIGKILL)
    private_redis["process"].wait()
    down = [api.get("/api/storage/chat") for _ in range(3)]
    assert [r.status_code for r in down] == [503] * 3
    assert all(r.json()["error"]["code"] == "unavailable:database" for r in down)
    assert api.get("/api/health/").status_code == 503
    private_redis["process"] = localredis.start(private_redis["url"], private_redis["dir"])
    _wait_answering()
    time.sleep(0.3)  # the breaker's open period (0.2 s here) has passed
    back = api.get("/api/storage/chat")
    assert back.status_code == 200 and [c["id"] for c in back.json()["chats"]] == [learner["chat"]["id"]]


def test_a_full_redis_is_a_507_and_deletes_still_work(private_redis, learner, caplog):
    api, chat = learner["api"], learner["chat"]
    client = get_redis()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 256 * 1024)
    text = base64.b85encode(os.urandom(12 * 1024)).decode()  # 15 KB that deflate cannot shrink
    caplog.set_level(logging.ERROR)
    statuses = []
    for _ in range(60):
        response = api.post(
            "/api/storage/message",
            {"chatId": chat["id"], "role": "assistant", "parts": [{"type": "text", "text": text}]},
        )
        statuses.append(response.status_code)
        if response.status_code != 201:
            break
    assert statuses[-1] == 507 and statuses.count(201) >= 3, statuses
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage:database" and "memory is full" in error["message"]
    assert "maxmemory" in caplog.text  # the operator's hint
    assert api.get(f"/api/storage/chat/{chat['id']}").status_code == 200  # reads keep working
    deleted = api.delete(f"/api/storage/chat/{chat['id']}")
    assert deleted.status_code == 200, deleted.content
    assert not client.exists(keys.chat(chat["id"])) and not client.zcard(keys.chat_messages(chat["id"]))
    again = api.post("/api/storage/chat", {"title": "after the cleanup"})
    assert again.status_code == 201  # space was freed through the API


def test_a_websocket_opened_while_redis_is_down_closes_with_try_again_later(private_redis, learner):
    from tests.realtime.conftest import communicator, run

    token = tokens.issue(learner["user"]["id"])["token"]
    private_redis["process"].send_signal(signal.SIGKILL)
    private_redis["process"].wait()

    async def scenario() -> dict[str, Any]:
        comm = await communicator(token=token)
        closed = await comm.receive_output(timeout=10)
        await comm.wait()
        return closed

    with override_settings(CHANNEL_LAYERS={}):
        closed = run(scenario)
    assert closed == {"type": "websocket.close", "code": 1013, "reason": closed.get("reason")}


def test_web_and_indexer_ride_out_a_kill_and_a_freeze_under_load(tmp_path):
    """``bench/faults.py`` in short: 3 s down, 3 s frozen, 3 writers."""
    from bench import faults

    figures = faults.run(down=3, freeze=3, writers=3, warm=1.0, workdir=tmp_path)
    for row in figures["faults"]:
        assert row["attempts"] > 0 and row["bad_answers"] == 0, row
        assert row["recovery_s"] is not None, row  # writes were acknowledged again after the fault
        assert set(row["health_statuses"]) <= {200, 503}, row
    after = figures["after"]
    assert after["acknowledged"] > 0
    assert after["lost"] == 0 and after["applied_twice"] == 0, after
    assert after["running"] == {"web": True, "indexer": True}, after
    assert after["index_backlog"] == 0 and after["repair_exit"] == 0, after


def test_the_schema_declares_the_idempotency_key_on_posts(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    assert posts and all(any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])) for op in posts.values())
