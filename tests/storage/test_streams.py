"""Resumable AI responses: the Redis stream buffer, its producer API and the SSE reader."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from typing import Any

import httpx
import pytest

from mookti import events
from mookti.redis import get_redis
from storage import keys
from storage.managers.streams import _Batch, _Follower, _Hub, streams
from tests.conftest import snapshot_keys
from tests.realtime.conftest import start_server


def new_chat(user: dict[str, Any], visibility: str = "private") -> str:
    response = user["api"].post("/api/storage/chat", {"title": "t", "visibility": visibility})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def new_stream(user: dict[str, Any], chat_id: str) -> str:
    stream_id = str(uuid.uuid4())
    response = user["api"].post(f"/api/storage/chat/{chat_id}/streams", {"streamId": stream_id})
    assert response.status_code == 201, response.content
    return stream_id


def parse_sse(text: str) -> tuple[list[tuple[int, str]], str | None]:
    """(chunks as (resume position, text), end status) from an event-stream body."""
    chunks, end = [], None
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if lines.get("event") == "end":
            end = json.loads(lines["data"])["status"]
        elif "data" in lines:
            chunks.append((int(lines["id"]), json.loads(lines["data"])))
    return chunks, end


def sse_body(response: Any) -> str:
    """The whole body of an ended stream (the test client consumes the async iterator itself)."""
    return b"".join(response).decode()


def append(user: dict[str, Any], stream_id: str, seq: int, chunks: list[str]) -> Any:
    return user["api"].post(f"/api/storage/stream/{stream_id}/chunks", {"seq": seq, "chunks": chunks})


def test_produce_end_and_read(alice):
    chat_id = new_chat(alice)
    stream_id = new_stream(alice, chat_id)
    active = alice["api"].get(f"/api/storage/chat/{chat_id}/active").json()
    assert (active["streamId"], active["status"], active["position"]) == (stream_id, "streaming", 0)

    assert append(alice, stream_id, 0, ["Hel", "lo\n"]).json()["position"] == 2
    retried = append(alice, stream_id, 0, ["Hel", "lo\n"]).json()
    assert (retried["position"], retried["duplicate"]) == (2, True)
    assert append(alice, stream_id, 1, ["wörld", "\r\n:x"]).json()["position"] == 4
    assert alice["api"].post(f"/api/storage/stream/{stream_id}/end", {}).json()["status"] == "done"
    assert alice["api"].post(f"/api/storage/stream/{stream_id}/end", {"status": "done"}).status_code == 200

    response = alice["api"].get(f"/api/storage/stream/{stream_id}?resumeAt=1", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    chunks, end = parse_sse(sse_body(response))
    assert chunks == [(2, "lo\n"), (3, "wörld"), (4, "\r\n:x")]
    assert end == "done"
    active = alice["api"].get(f"/api/storage/chat/{chat_id}/active").json()
    assert (active["status"], active["position"]) == ("done", 4)
    state = alice["api"].get(f"/api/storage/stream/{stream_id}/state").json()
    assert (state["status"], state["position"], state["chatId"]) == ("done", 4, chat_id)
    assert active["endedAt"]

    published = [event_type for _, event_type, _ in events.read(alice["id"])]
    assert "stream.started" in published and "stream.ended" in published


def test_access(alice, bob, anon):
    private = new_stream(alice, new_chat(alice))
    public_chat = new_chat(alice, "public")
    public = new_stream(alice, public_chat)
    alice["api"].post(f"/api/storage/stream/{public}/end", {})
    for reader in (bob["api"], anon):
        assert reader.get(f"/api/storage/stream/{private}").status_code == 404
        response = reader.get(f"/api/storage/stream/{public}")
        assert response.status_code == 200
        assert parse_sse(sse_body(response)) == ([], "done")
        assert reader.get(f"/api/storage/chat/{public_chat}/active").json()["streamId"] == public
    assert anon.post(f"/api/storage/stream/{public}/chunks", {"seq": 0, "chunks": []}).status_code == 401


def test_expired_buffer_is_422_and_unknown_is_404(alice):
    chat_id = new_chat(alice)
    stream_id = new_stream(alice, chat_id)
    alice["api"].post(f"/api/storage/stream/{stream_id}/end", {})
    get_redis().delete(keys.chat_stream_meta(chat_id, stream_id), keys.chat_stream(chat_id, stream_id))
    response = alice["api"].get(f"/api/storage/stream/{stream_id}")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unprocessable:stream"
    assert alice["api"].get(f"/api/storage/stream/{uuid.uuid4()}").status_code == 404


def test_bad_input_writes_nothing(alice, bob, settings):
    settings.MOOKTI_STREAMS = {**settings.MOOKTI_STREAMS, "MAX_CHUNKS": 5, "MAX_BYTES": 64, "MAX_BATCH": 4}
    chat_id = new_chat(alice)
    stream_id = new_stream(alice, chat_id)
    assert append(alice, stream_id, 0, ["ab", "cd"]).status_code == 200
    ended = new_stream(alice, chat_id)
    alice["api"].post(f"/api/storage/stream/{ended}/end", {"status": "failed"})
    other_chat = new_chat(bob)
    doomed = new_chat(alice)
    orphan = new_stream(alice, doomed)
    alice["api"].delete(f"/api/storage/chat/{doomed}")
    huge = "x" * (settings.MOOKTI_STREAMS["MAX_CHUNK_BYTES"] + 1)
    cases = [
        (alice, f"stream/{uuid.uuid4()}/chunks", {"seq": 0, "chunks": ["a"]}, 404, None),
        (alice, f"stream/{stream_id}/chunks", {"seq": 1, "chunks": [huge]}, 400, "chunks"),
        (alice, f"stream/{stream_id}/chunks", {"seq": 1, "chunks": ["a"] * 5}, 400, "chunks"),
        (alice, f"stream/{stream_id}/chunks", {"seq": 1, "chunks": ["a"] * 4}, 413, "chunks"),
        (alice, f"stream/{stream_id}/chunks", {"seq": 1, "chunks": ["y" * 61]}, 413, "chunks"),
        (alice, f"stream/{stream_id}/chunks", {"seq": 3, "chunks": ["a"]}, 409, "seq"),
        (alice, f"stream/{stream_id}/chunks", {"seq": -1, "chunks": ["a"]}, 400, "seq"),
        (alice, f"stream/{stream_id}/chunks", {"seq": 1, "chunks": [1]}, 400, "chunks"),
        (alice, f"stream/{stream_id}/chunks", {"seq": 1, "chunks": ["a"], "x": 1}, 400, "x"),
        (alice, f"stream/{stream_id}/chunks", {"chunks": ["a"]}, 400, "seq"),
        (alice, f"stream/{ended}/chunks", {"seq": 0, "chunks": ["a"]}, 409, "seq"),
        (alice, f"stream/{ended}/end", {"status": "done"}, 409, "status"),
        (alice, f"stream/{stream_id}/end", {"status": "stale"}, 400, "status"),
        (alice, "stream/bad%7Bid/chunks", {"seq": 0, "chunks": ["a"]}, 400, "streamId"),
        (bob, f"stream/{stream_id}/chunks", {"seq": 1, "chunks": ["a"]}, 404, None),
        (bob, f"stream/{stream_id}/end", {}, 404, None),
        (alice, f"chat/{other_chat}/streams", {"streamId": stream_id}, 404, None),
        (bob, f"chat/{other_chat}/streams", {"streamId": stream_id}, 409, "streamId"),
        (alice, f"stream/{orphan}/chunks", {"seq": 0, "chunks": ["a"]}, 404, None),
        (alice, f"stream/{orphan}/end", {}, 404, None),
    ]
    before = snapshot_keys()
    for user, path, body, status, field in cases:
        response = user["api"].post(f"/api/storage/{path}", body)
        assert response.status_code == status, (path, body, response.content)
        error = response.json()["error"]
        if field:
            assert field in error.get("fields", {}), (path, error)
    assert alice["api"].get(f"/api/storage/stream/{stream_id}?resumeAt=-1").status_code == 400
    assert snapshot_keys() == before


def test_silent_producer_goes_stale(alice, settings):
    settings.MOOKTI_STREAMS = {**settings.MOOKTI_STREAMS, "STALE_AFTER": 1, "HEARTBEAT": 1}
    chat_id = new_chat(alice)
    stream_id = new_stream(alice, chat_id)
    append(alice, stream_id, 0, ["a", "b"])

    async def read() -> list[Any]:
        return [item async for item in streams.follow(streams.locate(stream_id), 0) if item is not None]

    assert asyncio.run(read()) == [[(1, "a"), (2, "b")], "stale"]
    assert alice["api"].get(f"/api/storage/chat/{chat_id}/active").json()["status"] == "stale"
    assert append(alice, stream_id, 1, ["c"]).status_code == 409


# --- live: a real uvicorn, real HTTP readers ---------------------------------------------------
@pytest.fixture(scope="module")
def server():
    started = start_server()
    yield started
    started.stop()


async def read_stream(client: httpx.AsyncClient, base: str, token: str, stream_id: str, start: int):
    url = f"{base}/api/storage/stream/{stream_id}?resumeAt={start}"
    async with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status_code == 200
        body = (await response.aread()).decode()
    return parse_sse(body)


def produce(user: dict[str, Any], stream_id: str, chunks: list[str], batch: int, started: threading.Event) -> None:
    """Append ``chunks`` in batches through the manager, then end the stream."""
    for seq, offset in enumerate(range(0, len(chunks), batch)):
        streams.append(user["id"], stream_id, seq, chunks[offset : offset + batch])
        if seq == 2:
            started.set()
    streams.end(user["id"], stream_id, "done")
    started.set()


@pytest.mark.slow
def test_a_thousand_resumes_of_live_and_finished_streams(server, alice):
    rng = random.Random(18)
    chat_id = new_chat(alice)
    texts = {new_stream(alice, chat_id): [f"{i}:{uuid.uuid4().hex[: rng.randint(1, 20)]}" for i in range(120)]}
    for _ in range(7):
        texts[new_stream(alice, chat_id)] = [f"{i}-{rng.random()}" for i in range(rng.randint(20, 120))]
    ids = list(texts)
    finished, live = ids[:4], ids[4:]
    for stream_id in finished:
        produce(alice, stream_id, texts[stream_id], 7, threading.Event())

    async def scenario() -> list[tuple[str, int, Any]]:
        # each resume on a new connection, as a page reload: no race with the server closing an idle one
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=httpx.Timeout(120, pool=None), limits=limits) as client:
            gate = asyncio.Semaphore(50)

            async def one(stream_id: str, start: int):
                async with gate:
                    return stream_id, start, await read_stream(client, server.base, alice["token"], stream_id, start)

            readers = []
            for n in range(1000):
                stream_id = rng.choice(ids)
                readers.append(asyncio.create_task(one(stream_id, rng.randint(0, len(texts[stream_id])))))
                if n == 300:  # the live streams start while readers are already waiting on them
                    for stream_id in live:
                        threading.Thread(
                            target=produce, args=(alice, stream_id, texts[stream_id], 3, threading.Event())
                        ).start()
            return await asyncio.gather(*readers)

    results = asyncio.run(scenario())
    assert len(results) == 1000
    for stream_id, start, (chunks, end) in results:
        expected = [(p + 1, t) for p, t in enumerate(texts[stream_id])][start:]
        assert chunks == expected, (stream_id, start)
        assert end == "done"


def test_reader_joining_mid_stream_follows_to_the_end(server, alice):
    chat_id = new_chat(alice)
    stream_id = new_stream(alice, chat_id)
    chunks = [f"token {i} " for i in range(400)]
    started = threading.Event()
    producer = threading.Thread(target=produce, args=(alice, stream_id, chunks, 2, started))
    producer.start()
    started.wait(30)
    position = alice["api"].get(f"/api/storage/chat/{chat_id}/active").json()["position"]

    async def scenario():
        async with httpx.AsyncClient(timeout=60) as client:
            return await read_stream(client, server.base, alice["token"], stream_id, 0)

    got, end = asyncio.run(scenario())
    producer.join()
    assert position > 0
    assert [text for _, text in got] == chunks
    assert end == "done"


# --- the shared reader (one XREAD for every followed stream of a process) ----------------------
def test_batch_after_a_position():
    batch = _Batch([("0-3", {"c": "c"}), ("0-4", ["c", "d"]), ("0-5", {"end": "done"})])
    assert batch.after(2) == ([(3, "c"), (4, "d")], "done", False)
    assert batch.after(2)[0] is batch.chunks  # the batch as it is: its wire form is built once
    assert batch.after(3) == ([(4, "d")], "done", False)
    assert batch.after(4) == ([], "done", False)
    assert batch.after(1) == ([], None, True)  # position 2 is missing: the follower reads the buffer
    assert _Batch([]).after(0) == ([], None, False)


def follow_all(stream_id: str, start: int, items: list[Any]):
    async def run() -> None:
        async for item in streams.follow(streams.locate(stream_id), start):
            if item is not None:
                items.append(item)

    return run()


def test_one_shared_read_serves_every_follower(alice, monkeypatch):
    sizes = []
    for name in ("_read", "_poll_cluster"):
        original = getattr(_Hub, name)

        async def counted(self, client, original=original):
            sizes.append(len(self._streams))
            return await original(self, client)

        monkeypatch.setattr(_Hub, name, counted)
    chats = [new_chat(alice) for _ in range(4)]  # streams in several slots (per-slot reads on a cluster)
    texts = {new_stream(alice, chats[n % 4]): [f"{n}.{i}" for i in range(30)] for n in range(40)}
    for stream_id, chunks in texts.items():  # some chunks buffered before anyone follows
        streams.append(alice["id"], stream_id, 0, chunks[:4])

    def produce_all() -> None:
        for seq in range(1, 14):
            for stream_id, chunks in texts.items():
                streams.append(alice["id"], stream_id, seq, chunks[2 + 2 * seq : 4 + 2 * seq])
        for stream_id in texts:
            streams.end(alice["id"], stream_id, "done")

    async def scenario() -> dict[tuple[str, int, int], list[Any]]:
        got: dict[tuple[str, int, int], list[Any]] = {}
        tasks = []
        for stream_id in texts:
            for n, start in enumerate((0, 0, 3)):  # two followers from the start, one mid-buffer
                got[stream_id, n, start] = []
                tasks.append(asyncio.create_task(follow_all(stream_id, start, got[stream_id, n, start])))
        await asyncio.sleep(0.2)  # every follower watching before the producer starts
        producer = asyncio.create_task(asyncio.to_thread(produce_all))
        await asyncio.gather(*tasks, producer)
        return got

    got = asyncio.run(scenario())
    shared = 0
    for (stream_id, n, start), items in got.items():
        assert items[-1] == "done"
        chunks = [chunk for batch in items[:-1] for chunk in batch]
        assert chunks == [(p + 1, t) for p, t in enumerate(texts[stream_id])][start:], (stream_id, start)
        if n == 0:
            other = {id(batch) for batch in got[stream_id, 1, 0][:-1]}
            shared += sum(id(batch) in other for batch in items[:-1])
    assert max(sizes) == len(texts)  # one hub read covered every followed stream
    assert shared > 0  # followers of one stream were handed the same batch object


def test_a_follower_that_falls_behind_reads_the_buffer(alice, monkeypatch):
    monkeypatch.setattr("storage.managers.streams.QUEUE_SIZE", 1)
    stream_id = new_stream(alice, new_chat(alice))
    chunks = [f"t{i}" for i in range(120)]

    async def slow_reader() -> list[Any]:
        items = []
        async for item in streams.follow(streams.locate(stream_id), 0):
            if item is not None:
                items.append(item)
                await asyncio.sleep(0.02)  # a slow client: the hub's batches pile up and get dropped
        return items

    async def scenario() -> list[Any]:
        reader = asyncio.create_task(slow_reader())
        producer = asyncio.create_task(asyncio.to_thread(produce, alice, stream_id, chunks, 1, threading.Event()))
        items, _ = await asyncio.gather(reader, producer)
        return items

    items = asyncio.run(scenario())
    assert items[-1] == "done"
    assert [text for batch in items[:-1] for _, text in batch] == chunks


def test_a_full_follower_queue_drops_and_asks_for_a_buffer_read(monkeypatch):
    monkeypatch.setattr("storage.managers.streams.QUEUE_SIZE", 1)

    async def scenario() -> list[bool]:
        follower = _Follower(wait=15)
        first, second = _Batch([("0-1", {"c": "a"})]), _Batch([("0-2", {"c": "b"})])
        follower.put(first, 0.0)
        follower.put(second, 0.0)  # the queue is full: dropped, the follower is behind
        seen = [follower.resync()]  # not yet: a batch is still queued
        assert await follower.next() is first
        return [*seen, follower.resync(), follower.resync()]

    assert asyncio.run(scenario()) == [False, True, False]  # once drained: read the buffer, once
