"""mookti.events: the replay stream, event shapes, channel-layer pokes and their failure."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from channels.layers import get_channel_layer

from mookti import events, keys
from mookti.redis import get_redis
from storage.managers import users
from tests.realtime.conftest import ROOT, free_port, run

DEAD_LAYER = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"], "prefix": "mookti-test-dead:"},
    }
}


def stream(user_id: str) -> list[tuple[str, dict[str, str]]]:
    """The user's events, decoded from their stored form: ``(id, {"type": ..., "data": JSON})``."""
    return [(entry_id, {"type": event_type, "data": data}) for entry_id, event_type, data in events.read(user_id)]


def stored(user_id: str) -> list[dict[bytes, bytes]]:
    """The fields of the user's stream entries as Redis holds them."""
    return [fields for _, fields in get_redis(raw=True).xrange(keys.events(user_id))]


def test_publish_appends_to_the_stream_with_a_retention_expiry(alice):
    event_id = events.publish(alice["id"], "test.ping", {"n": 1}, chat_id="c1")
    entries = stream(alice["id"])
    assert entries[-1][0] == event_id
    assert entries[-1][1] == {"type": "test.ping", "data": '{"n":1}'}  # the chat scopes the poke, not the entry
    ttl = get_redis().ttl(keys.events(alice["id"]))
    assert 0 < ttl <= 7 * 24 * 3600


def test_maxlen_caps_the_stream(alice, settings):
    settings.MOOKTI_EVENTS_MAXLEN = 10
    first = events.publish(alice["id"], "test.ping", {"n": 0})
    for n in range(1, 250):
        events.publish(alice["id"], "test.ping", {"n": n})
    length = get_redis().xlen(keys.events(alice["id"]))
    assert length < 250  # approximate trimming keeps whole nodes of up to 100 entries
    info = get_redis().xinfo_stream(keys.events(alice["id"]))
    assert not events.is_continuous(first, info)
    assert events.is_continuous(info["first-entry"][0], info)


def test_events_older_than_the_retention_are_trimmed(alice, settings):
    settings.MOOKTI_EVENTS_RETENTION = 1
    old = events.publish(alice["id"], "test.ping", {"n": 0})
    time.sleep(1.1)
    new = events.publish(alice["id"], "test.ping", {"n": 1})
    assert [entry_id for entry_id, _ in stream(alice["id"])] == [new]
    assert old != new


def test_timestamps_are_rendered_like_the_api(alice):
    chat = alice["api"].post("/api/storage/chat", {"title": "Fractions"}).json()
    response = alice["api"].post(
        "/api/storage/message", {"chatId": chat["id"], "role": "assistant", "parts": [{"type": "text", "text": "hi"}]}
    )
    assert response.status_code == 201, response.content
    rest_message = response.json()[0]
    entries = {fields["type"]: json.loads(fields["data"]) for _, fields in stream(alice["id"])}
    # ids only: the text and its time are read over REST, never copied into the stream
    assert entries["message.created"] == {k: rest_message[k] for k in ("id", "chatId", "role")}
    # every entry is just type and data (one field layout: the stream stores the names once per node)
    assert {tuple(fields) for fields in stored(alice["id"])} == {(b"type", b"data")}
    assert entries["chat.created"]["createdAt"] == chat["createdAt"]


def test_render_leaves_nested_client_data_alone():
    rendered = events.render({"createdAt": 1_700_000_000_123_456, "parts": [{"startedAt": 5}], "count": 3})
    assert rendered == {"createdAt": "2023-11-14T22:13:20.123Z", "parts": [{"startedAt": 5}], "count": 3}


def test_every_storage_change_is_an_event(alice):
    api = alice["api"]
    chat = api.post("/api/storage/chat", {"title": "Algebra", "visibility": "private"}).json()
    api.patch(f"/api/storage/chat/{chat['id']}", {"title": "Algebra II"})
    saved = api.post(
        "/api/storage/message",
        {"chatId": chat["id"], "role": "assistant", "parts": [{"type": "text", "text": "x = 2"}]},
    ).json()[0]
    api.patch(f"/api/storage/message/{saved['id']}", {"parts": [{"type": "text", "text": "x = 3"}]})
    api.post("/api/storage/vote", {"chatId": chat["id"], "messageId": saved["id"], "type": "up"})
    api.delete(f"/api/storage/message/after?chatId={chat['id']}&timestamp={saved['createdAt']}")
    api.post("/api/storage/document", {"title": "Notes", "kind": "text", "content": "a"})
    api.delete(f"/api/storage/chat/{chat['id']}")
    types = [fields["type"] for _, fields in stream(alice["id"])]
    assert types == [
        "chat.created",
        "chat.updated",
        "message.created",
        "message.updated",
        "vote.updated",
        "message.deleted",
        "document.saved",
        "chat.deleted",
    ]
    deleted = json.loads(stream(alice["id"])[5][1]["data"])
    assert deleted == {"chatId": chat["id"], "ids": [saved["id"]], "after": saved["createdAt"]}


def test_a_dead_channel_layer_does_not_fail_or_stall_the_write(alice, settings, caplog, monkeypatch):
    settings.CHANNEL_LAYERS = DEAD_LAYER
    monkeypatch.setattr(events, "_layer_down", False)
    chat = alice["api"].post("/api/storage/chat", {"title": "Offline"})
    assert chat.status_code == 201
    started = time.monotonic()
    for n in range(20):
        events.publish(alice["id"], "test.ping", {"n": n})
    assert time.monotonic() - started < 2  # the write never waits for the layer
    assert events.flush(5)
    types = [fields["type"] for _, fields in stream(alice["id"])]
    assert types == ["chat.created"] + ["test.ping"] * 20
    assert caplog.text.count("channel layer unavailable") == 1  # once per outage, not per poke


def test_publish_from_async_code_reaches_the_group(alice):
    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.user_group(alice["id"]), channel)
        first = await events.apublish(alice["id"], "test.async", {"n": 1})
        await asyncio.to_thread(events.flush)
        events.publish(alice["id"], "test.sync-in-async", {"n": 2})  # a sync call on a loop must not raise
        pokes = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
        return first, pokes

    first, pokes = run(scenario)
    assert [json.loads(p["text"])["type"] for p in pokes] == ["test.async", "test.sync-in-async"]
    assert pokes[0]["id"] == first
    assert pokes[1]["prev"] == first  # the chain link listeners use to spot a missing poke


def test_deleting_a_user_drops_their_stream(alice):
    events.publish(alice["id"], "test.ping", {})
    assert get_redis().exists(keys.events(alice["id"]))
    users.delete(alice["id"])
    assert not get_redis().exists(keys.events(alice["id"]))


def test_a_short_lived_process_delivers_its_pokes_before_exiting(alice):
    """A management command publishes and exits at once: the poke still goes out (flushed at exit)."""
    script = (
        "import django; django.setup()\n"
        "from mookti import events\n"
        f"print(events.publish({alice['id']!r}, 'test.command', {{'n': 1}}))\n"
    )

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.user_group(alice["id"]), channel)
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        poke = await asyncio.wait_for(layer.receive(channel), 5)
        return done.stdout.strip(), poke

    event_id, poke = run(scenario)
    assert poke["id"] == event_id
