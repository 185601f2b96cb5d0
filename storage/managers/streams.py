"""The active-chat message buffer: resumable AI responses kept in Redis.

Each response stream is a Redis Stream ``chat:{cid}:stream:{sid}`` in its chat's slot, with a
meta hash beside it. Chunk ``p`` (0-based) is entry ``0-<p+1>``, so positions are dense: a reader
resumes with one XRANGE and notices any gap in what it was handed. The end (done, failed or
stale) is one more entry, so followers see it in order after the last chunk. The buffer lives in
Redis, not in the producing process: a producer that dies leaves its chunks readable, and after
``MOOKTI_STREAM_STALE_AFTER`` seconds of silence the stream is marked stale so nobody waits forever.

A producer appends numbered batches (``seq`` 0, 1, 2, ...): one Lua call per batch checks the
owner, the state, the sequence number and the caps, appends and refreshes the expiry. A batch
whose number was already accepted is a no-op (a retry), a later number is a gap (refused).

``stream-chat:{sid}`` maps a stream id to its chat (it lives in the stream id's slot); the
mapping never changes while it exists, so each process caches it and a steady producer costs one
Redis round trip per batch. Live readers share one ``XREAD BLOCK`` per event loop (:class:`_Hub`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from redis.crc import key_slot

from mookti import events
from mookti.errors import Conflict, DomainError, NotFound, PayloadTooLarge
from mookti.ids import now_us
from mookti.redis import REDIS_ERRORS, Write, get_async_redis, get_redis, is_cluster, pipeline, register_script
from storage import keys
from storage.managers.chats import decode_chat, require_owned, require_readable

STATUSES = ("streaming", "done", "failed", "stale")
END_STATUSES = ("done", "failed")
READ_BATCH = 1000
HUB_BLOCK_MS = 25  # the shared XREAD's BLOCK: a stream first followed while it waits joins the next read
HUB_MIN_INTERVAL = 0.005  # seconds: at most one shared read per this, so a busy one collects many batches
HUB_POLL_MS = 10  # Redis Cluster: the per-slot XREADs cannot block together; they poll at this interval
CLUSTER_READS = 8  # followers' own buffer reads in flight at once per process on a cluster (see _read)
CLUSTER_READ_ATTEMPTS = 4  # and how often such a read is sent before its failure ends the follower
HUB_SWEEP_S = 0.5  # how often the hub looks for followers due a keep-alive
QUEUE_SIZE = 256
_LOOKUP_CACHE_SIZE = 65_536
logger = logging.getLogger(__name__)


class Gone(DomainError):
    """The stream ended and its buffer expired (resumable-stream answers "already done")."""

    status_code = 422
    code = "unprocessable:stream"


def conf(name: str) -> int:
    """A stream setting (``MOOKTI_STREAM_*``)."""
    return int(settings.MOOKTI_STREAMS[name])


def _lifetime() -> int:
    """Seconds a silent, never-ended buffer outlives its last activity: stale, then kept as ended."""
    return conf("STALE_AFTER") + conf("TTL")


# KEYS[1] meta, KEYS[2] the chat's stream ids ZSET, KEYS[3] the chat's active-stream pointer;
# ARGV[1] owner, ARGV[2] stream id, ARGV[3] now (us), ARGV[4] lifetime (s).
# Registers a new buffer and makes it the chat's active stream; 0 if the id is known already.
START = register_script(
    """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('ZSCORE', KEYS[2], ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'userId', ARGV[1], 'status', 'streaming', 'seq', 0, 'count', 0, 'bytes', 0,
  'createdAt', ARGV[3], 'lastActivityAt', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4])
return 1
"""
)

# Shared by APPEND and FINISH: ends the stream (status ARGV[s]) with an end entry after the last chunk.
_END = """
local function finish(status, count, now, ttl)
  redis.call('XADD', KEYS[2], '0-' .. (count + 1), 'end', status)
  redis.call('HSET', KEYS[1], 'status', status, 'endedAt', now)
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('EXPIRE', KEYS[3], ttl) end
end
"""

# KEYS[1] meta, KEYS[2] chunks, KEYS[3] active pointer, KEYS[4] the chat (a deleted chat's stream
# takes nothing more); ARGV[1] owner, ARGV[2] stream id, ARGV[3] seq,
# ARGV[4] now (us), ARGV[5] stale cutoff (us), ARGV[6] max chunks, ARGV[7] max bytes, ARGV[8] lifetime,
# ARGV[9] ttl after the end, ARGV[10..] the chunks. Replies {code, count, status}.
APPEND = register_script(
    _END
    + """
local m = redis.call('HMGET', KEYS[1], 'userId', 'status', 'seq', 'count', 'bytes', 'lastActivityAt')
if not m[1] or m[1] ~= ARGV[1] or redis.call('EXISTS', KEYS[4]) == 0 then return {'unknown', 0, ''} end
local seq, want, count = tonumber(m[3]), tonumber(ARGV[3]), tonumber(m[4])
if want < seq then return {'duplicate', count, m[2]} end
if m[2] ~= 'streaming' then return {'ended', count, m[2]} end
if tonumber(m[6]) < tonumber(ARGV[5]) then
  finish('stale', count, ARGV[4], ARGV[9])
  return {'ended', count, 'stale'}
end
if want > seq then return {'gap', seq, m[2]} end
local size = 0
for i = 10, #ARGV do size = size + #ARGV[i] end
if count + #ARGV - 9 > tonumber(ARGV[6]) then return {'too_many', count, m[2]} end
if tonumber(m[5]) + size > tonumber(ARGV[7]) then return {'too_large', count, m[2]} end
for i = 10, #ARGV do
  count = count + 1
  redis.call('XADD', KEYS[2], '0-' .. count, 'c', ARGV[i])
end
redis.call('HSET', KEYS[1], 'seq', seq + 1, 'count', count, 'bytes', tonumber(m[5]) + size, 'lastActivityAt', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[8])
if count > 0 then redis.call('EXPIRE', KEYS[2], ARGV[8]) end
if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('EXPIRE', KEYS[3], ARGV[8]) end
return {'ok', count, 'streaming'}
"""
)

# KEYS as APPEND; ARGV[1] owner ('' = anyone: a reader marking a silent stream stale), ARGV[2] stream id,
# ARGV[3] status, ARGV[4] now (us), ARGV[5] ttl, ARGV[6] stale cutoff ('' = end regardless).
# Replies {code, count, status}: ok, same (already ended so: a retry), ended (otherwise), active, unknown.
FINISH = register_script(
    _END
    + """
local m = redis.call('HMGET', KEYS[1], 'userId', 'status', 'count', 'lastActivityAt')
if not m[1] or (ARGV[1] ~= '' and m[1] ~= ARGV[1]) or redis.call('EXISTS', KEYS[4]) == 0 then
  return {'unknown', 0, ''}
end
if m[2] ~= 'streaming' then
  if m[2] == ARGV[3] then return {'same', tonumber(m[3]), m[2]} end
  return {'ended', tonumber(m[3]), m[2]}
end
if ARGV[6] ~= '' and tonumber(m[4]) >= tonumber(ARGV[6]) then return {'active', tonumber(m[3]), m[2]} end
finish(ARGV[3], tonumber(m[3]), ARGV[4], ARGV[5])
return {'ok', tonumber(m[3]), ARGV[3]}
"""
)


@dataclass(frozen=True)
class Located:
    """Where a stream id lives: its chat and the chat's owner."""

    stream_id: str
    chat_id: str
    owner_id: str

    @property
    def keys(self) -> list[str]:
        """The KEYS of APPEND and FINISH (all in the chat's slot)."""
        return [
            keys.chat_stream_meta(self.chat_id, self.stream_id),
            keys.chat_stream(self.chat_id, self.stream_id),
            keys.chat_active_stream(self.chat_id),
            keys.chat(self.chat_id),
        ]


def decode_meta(stream_id: str, chat_id: str, raw: dict[str, str], now: int | None = None) -> dict[str, Any] | None:
    """The stream's state as the API shows it; a streaming one silent past the cutoff reads as stale."""
    if not raw or "userId" not in raw:
        return None
    last = int(raw.get("lastActivityAt", 0))
    status = raw.get("status", "streaming")
    now = now or now_us()
    if status == "streaming" and last < now - conf("STALE_AFTER") * 1_000_000:
        status = "stale"
    ended = raw.get("endedAt")
    return {
        "streamId": stream_id,
        "chatId": chat_id,
        "status": status,
        "position": int(raw.get("count", 0)),
        "seq": int(raw.get("seq", 0)),
        "createdAt": int(raw.get("createdAt", 0)),
        "lastActivityAt": last,
        "endedAt": int(ended) if ended else None,
    }


class StreamManager:
    def __init__(self) -> None:
        self._located: dict[str, Located] = {}

    # --- producer ------------------------------------------------------------------------------
    def create(self, actor_id: str, chat_id: str, stream_id: str) -> dict[str, Any]:
        """createStreamId: register the id on the chat, open its buffer, make it the active stream.

        Idempotent: an id the chat knows already is answered as it is. One read, one write.
        """
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.get(keys.stream_chat(stream_id))
        pipe.zscore(keys.chat_streams(chat_id), stream_id)
        raw_chat, lookup, score = pipe.execute()
        chat = require_owned(decode_chat(raw_chat), actor_id)
        if lookup and lookup != f"{chat_id}/{actor_id}":
            raise Conflict("This stream id belongs to another chat.", {"streamId": ["already exists"]})
        if score is not None:
            return {"id": stream_id, "chatId": chat_id, "createdAt": int(score)}
        now = now_us()
        located = Located(stream_id, chat_id, actor_id)
        write = Write()
        write.step(
            lambda p: p.set(keys.stream_chat(stream_id), f"{chat_id}/{actor_id}", nx=True, ex=conf("LOOKUP_TTL"))
        )
        write.step(
            lambda p: START(
                keys=[located.keys[0], keys.chat_streams(chat_id), located.keys[2]],
                args=[actor_id, stream_id, now, _lifetime()],
                client=p,
            )
        )
        data = {"id": stream_id, "chatId": chat_id, "createdAt": now}
        events.stage(write, actor_id, "stream.started", data, chat_id=chat_id, public=chat["visibility"] == "public")
        write.execute()
        self._remember(located)
        return data

    def append(self, actor_id: str, stream_id: str, seq: int, chunks: list[str]) -> dict[str, Any]:
        """Append batch ``seq``: one Lua call (one round trip once the stream's chat is known)."""
        located = self.locate(stream_id)
        if located.owner_id != actor_id:
            raise NotFound("stream")
        now = now_us()
        code, count, status = APPEND(
            keys=located.keys,
            args=[
                actor_id,
                stream_id,
                seq,
                now,
                now - conf("STALE_AFTER") * 1_000_000,
                conf("MAX_CHUNKS"),
                conf("MAX_BYTES"),
                _lifetime(),
                conf("TTL"),
                *chunks,
            ],
        )
        if code == "unknown":
            self._forget(stream_id)
            raise NotFound("stream")
        if code == "ended":
            raise Conflict(f"The stream has ended ({status}).", {"seq": [f"stream is {status}"]})
        if code == "gap":
            raise Conflict(f"Expected batch {count}.", {"seq": [f"expected {count}"]})
        if code == "too_many":
            raise PayloadTooLarge(
                f"A stream holds at most {conf('MAX_CHUNKS')} chunks.", {"chunks": ["too many chunks in the stream"]}
            )
        if code == "too_large":
            raise PayloadTooLarge(
                f"A stream holds at most {conf('MAX_BYTES')} bytes.", {"chunks": ["stream too large"]}
            )
        return {"streamId": stream_id, "position": int(count), "duplicate": code == "duplicate"}

    def end(self, actor_id: str, stream_id: str, status: str) -> dict[str, Any]:
        """Mark the stream done or failed (a repeat with the same status is a no-op)."""
        located = self.locate(stream_id)
        if located.owner_id != actor_id:
            raise NotFound("stream")
        code, count, current = self._finish(located, actor_id, status, stale_cutoff="")
        if code == "unknown":
            raise NotFound("stream")
        if code == "ended":
            raise Conflict(f"The stream has ended ({current}).", {"status": [f"stream is {current}"]})
        if code == "ok":
            self._announce_end(located, status, int(count))
        return {"streamId": stream_id, "status": current, "position": int(count)}

    def mark_stale(self, located: Located) -> bool:
        """End a stream whose producer went silent (any reader may); True if this call ended it."""
        cutoff = now_us() - conf("STALE_AFTER") * 1_000_000
        code, count, _ = self._finish(located, "", "stale", stale_cutoff=str(cutoff))
        if code == "ok":
            self._announce_end(located, "stale", int(count))
        return code == "ok"

    @staticmethod
    def _finish(located: Located, owner: str, status: str, stale_cutoff: str) -> list[Any]:
        return FINISH(keys=located.keys, args=[owner, located.stream_id, status, now_us(), conf("TTL"), stale_cutoff])

    @staticmethod
    def _announce_end(located: Located, status: str, count: int) -> None:
        chat = decode_chat(get_redis().hgetall(keys.chat(located.chat_id)))
        data = {"id": located.stream_id, "chatId": located.chat_id, "status": status, "position": count}
        public = chat is not None and chat["visibility"] == "public"
        events.publish(located.owner_id, "stream.ended", data, chat_id=located.chat_id, public=public)

    # --- readers -------------------------------------------------------------------------------
    def locate(self, stream_id: str) -> Located:
        """The stream's chat (cached: the mapping never changes while it exists); 404 if unknown."""
        located = self._located.get(stream_id)
        if located is None:
            value = get_redis().get(keys.stream_chat(stream_id))
            if not value:
                raise NotFound("stream")
            chat_id, _, owner_id = value.partition("/")
            located = Located(stream_id, chat_id, owner_id)
            self._remember(located)
        return located

    def open(self, actor_id: str | None, stream_id: str) -> tuple[Located, dict[str, Any]]:
        """Check a reader may read the stream and that its buffer is still there (else 422)."""
        located = self.locate(stream_id)
        pipe = pipeline()
        pipe.hgetall(keys.chat(located.chat_id))
        pipe.hgetall(located.keys[0])
        raw_chat, raw_meta = pipe.execute()
        require_readable(decode_chat(raw_chat), actor_id)
        meta = decode_meta(stream_id, located.chat_id, raw_meta)
        if meta is None:
            raise Gone("The stream is done and its buffer has expired.")
        return located, meta

    def active(self, actor_id: str | None, chat_id: str) -> dict[str, Any]:
        """The chat's most recent stream and its state (status ``none`` when there is none)."""
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.get(keys.chat_active_stream(chat_id))
        raw_chat, stream_id = pipe.execute()
        require_readable(decode_chat(raw_chat), actor_id)
        meta = None
        if stream_id:
            meta = decode_meta(stream_id, chat_id, get_redis().hgetall(keys.chat_stream_meta(chat_id, stream_id)))
        if meta is None:
            return {"chatId": chat_id, "streamId": None, "status": "none", "position": 0}
        meta.pop("seq")
        return meta

    async def follow(self, located: Located, start: int) -> AsyncIterator[Chunks | str | None]:
        """Chunks from position ``start`` on, then live ones, until the end.

        Yields :class:`Chunks` (whatever arrived together; followers of one stream handed the
        same batch get the same object, so its wire form is built once), ``None`` when nothing
        came for a while (a keep-alive), and last the end status (a string: done, failed, stale,
        or expired when the buffer vanished under a silent stream). Live batches come from the
        process's shared reader (:class:`_Hub`); the follower reads the buffer itself to start,
        after a gap (batches it missed) and after a quiet spell.
        """
        client = get_async_redis()
        stream_key = located.keys[1]
        hub = _hub()
        follower = hub.watch(stream_key, start, min(conf("HEARTBEAT"), conf("STALE_AFTER")))
        position = start
        try:
            batch: _Batch | None = await _read(client, stream_key, position)
            while True:
                if batch is None:  # quiet for a while: the buffer itself, then the producer's state
                    batch = await _read(client, stream_key, position)
                    if batch.entries:
                        continue
                    status = await self._check_silent(client, located)
                    if status == "expired":
                        yield status
                        return
                    batch = await _read(client, stream_key, position)
                    if not batch.entries:
                        yield None
                        batch = await follower.next()
                    continue
                chunks, end, gap = batch.after(position)
                while end is None and not gap and not follower.queue.empty():
                    # a reader that fell behind (a slow client, a busy process) sends what queued up
                    # as one write: fewer, larger writes let it catch up
                    queued = follower.queue.get_nowait()
                    if queued is None:
                        continue
                    batch = queued
                    more, end, gap = batch.after(chunks[-1][0] if chunks else position)
                    if more:
                        chunks = Chunks(chunks + more) if chunks else more
                if chunks:
                    position = chunks[-1][0]
                    yield chunks
                if end is not None:
                    yield end
                    return
                if gap or follower.resync() or len(batch.entries) >= READ_BATCH:
                    batch = await _read(client, stream_key, position)
                else:
                    batch = await follower.next()
        finally:
            hub.unwatch(stream_key, follower)

    async def _check_silent(self, client: Any, located: Located) -> str:
        """After a quiet spell: ``expired`` if the buffer is gone; marks a silent producer's stream stale."""
        raw = await client.hgetall(located.keys[0])
        meta = decode_meta(located.stream_id, located.chat_id, raw)
        if meta is None:
            return "expired"
        if meta["status"] == "stale" and raw.get("status") == "streaming":
            await asyncio.to_thread(self.mark_stale, located)
        return meta["status"]

    def _remember(self, located: Located) -> None:
        if len(self._located) >= _LOOKUP_CACHE_SIZE:
            self._located.clear()
        self._located[located.stream_id] = located

    def _forget(self, stream_id: str) -> None:
        self._located.pop(stream_id, None)


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[2])


class Chunks(list):
    """``(position after the chunk, text)`` pairs that arrived together. ``encoded`` is for the
    reader's wire form: built once, shared by every follower handed the same batch."""

    __slots__ = ("encoded",)

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self.encoded: Any = None


class _Batch:
    """Entries of one stream as read from Redis: its chunks (dense positions) and the end, if any."""

    __slots__ = ("chunks", "end", "entries", "first")

    def __init__(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        self.entries = entries
        self.first = _seq(entries[0][0]) if entries else 0
        self.chunks = Chunks()
        self.end: str | None = None
        expected = self.first
        for entry_id, fields in entries:  # one field each: {"c": text} or {"end": status} (a list raw)
            if _seq(entry_id) != expected:  # never within one read of a dense stream; stop there anyway
                break
            name, value = fields if isinstance(fields, list) else next(iter(fields.items()))
            if name == "end":
                self.end = value
                break
            self.chunks.append((expected, value))
            expected += 1

    def after(self, position: int) -> tuple[Chunks, str | None, bool]:
        """(chunks past ``position``, the end status if it follows them, whether a gap precedes them)."""
        if not self.entries:
            return Chunks(), None, False
        if self.first > position + 1:
            return Chunks(), None, True  # entries this follower has not seen come first
        if self.first == position + 1:
            return self.chunks, self.end, False  # the common case: the batch as it is, shared
        skip = position + 1 - self.first
        if skip > len(self.chunks):  # the follower is past the last chunk: only the end may be new
            return Chunks(), self.end if skip == len(self.chunks) + 1 else None, False
        return Chunks(self.chunks[skip:]), self.end, False


async def _read(client: Any, stream_key: str, position: int) -> _Batch:
    """Buffered entries after ``position`` (at most READ_BATCH; the follower comes back for more).

    On a cluster at most CLUSTER_READS at once per process: redis-py's asyncio cluster client, which
    never re-sends (mookti.redis), fails dozens of concurrent commands on a node with "Connection
    closed" once one of them fails (it reinitializes and drops the node's connections), which a
    burst of followers joining (a reconnect storm) sets off; such a failed read is sent again, after
    a short pause, up to CLUSTER_READ_ATTEMPTS times."""

    def read() -> Any:
        return client.xrange(stream_key, f"0-{position + 1}", "+", count=READ_BATCH)

    if not is_cluster():
        return _Batch(await read())
    async with _hub().cluster_reads:
        for attempt in range(CLUSTER_READ_ATTEMPTS - 1):
            try:
                return _Batch(await read())
            except redis.ConnectionError:  # a read, safe to send again (see above)
                await asyncio.sleep(0.05 * 2**attempt)
        return _Batch(await read())  # the last attempt's failure is the follower's


class _Follower:
    """One reader's inbox: the hub's batches of its stream; ``None`` after ``wait`` quiet seconds."""

    __slots__ = ("behind", "last", "queue", "wait")

    def __init__(self, wait: float) -> None:
        self.queue: asyncio.Queue[_Batch | None] = asyncio.Queue(QUEUE_SIZE)
        self.behind = False  # a batch was dropped (the queue was full): read the buffer
        self.last = time.monotonic()
        self.wait = wait

    def put(self, batch: _Batch | None, now: float) -> None:
        self.last = now
        if self.queue.full():
            self.behind = True
        else:
            self.queue.put_nowait(batch)

    async def next(self) -> _Batch | None:
        return await self.queue.get()

    def resync(self) -> bool:
        """True (once) when batches were dropped and the queue is drained: read the buffer now."""
        if self.behind and self.queue.empty():
            self.behind = False
            return True
        return False


def _bulk(value: bytes) -> bytes:
    """One argument of a command in the Redis protocol."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


_XREAD_HEAD = b"".join(_bulk(arg) for arg in (b"XREAD", b"COUNT", b"%d" % READ_BATCH, b"BLOCK", b"%d" % HUB_BLOCK_MS))
_XREAD_HEAD += _bulk(b"STREAMS")


class _Watched:
    __slots__ = ("cursor", "followers", "packed_key")

    def __init__(self, stream_key: str, cursor: str) -> None:
        self.cursor = cursor
        self.followers: set[_Follower] = set()
        self.packed_key = _bulk(stream_key.encode())


class _Hub:
    """The one reader of live streams per event loop (per web process): a single ``XREAD BLOCK``
    over every followed stream (on a cluster: an XREAD per hash slot, pipelined per node, polled),
    whose batches go to each follower's queue.

    A busy process reads at most every ``HUB_MIN_INTERVAL`` seconds, so one read collects the
    batches of many streams. A follower whose queue is full misses batches: it notices (a gap in
    the dense positions, or its ``behind`` flag) and reads the buffer itself, so nothing is lost.
    The hub also wakes followers that got nothing for their keep-alive interval (``None``).
    """

    def __init__(self) -> None:
        self._streams: dict[str, _Watched] = {}
        self._task: asyncio.Task | None = None
        self._swept = 0.0
        self.cluster_reads = asyncio.Semaphore(CLUSTER_READS)

    def watch(self, stream_key: str, position: int, wait: float) -> _Follower:
        follower = _Follower(wait)
        watched = self._streams.get(stream_key)
        if watched is None:
            watched = self._streams[stream_key] = _Watched(stream_key, f"0-{position}")
        watched.followers.add(follower)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return follower

    def unwatch(self, stream_key: str, follower: _Follower) -> None:
        watched = self._streams.get(stream_key)
        if watched is None:
            return
        watched.followers.discard(follower)
        if not watched.followers:
            del self._streams[stream_key]

    async def _run(self) -> None:
        cluster = is_cluster()
        client = get_async_redis(read_timeout=HUB_BLOCK_MS / 1000 + settings.MOOKTI_REDIS_TIMEOUT)
        loop = asyncio.get_running_loop()
        while self._streams:
            started = loop.time()
            try:
                replies = await (self._poll_cluster(client) if cluster else self._read(client))
                now = time.monotonic()
                for reply in replies:
                    self._deliver(reply, now)
            except Exception as exc:  # the hub must live on: followers wait on it (the sweep below)
                if not isinstance(exc, REDIS_ERRORS):
                    logger.exception("stream hub: the shared read failed")
                await asyncio.sleep(0.5)  # followers read the buffer themselves after their quiet spell
                now = time.monotonic()
            if now - self._swept >= HUB_SWEEP_S:
                self._sweep(now)
            pause = (HUB_POLL_MS / 1000 if cluster else HUB_MIN_INTERVAL) - (loop.time() - started)
            if pause > 0:
                await asyncio.sleep(pause)

    async def _read(self, client: Any) -> list[Any]:
        """One ``XREAD COUNT .. BLOCK .. STREAMS <every key> <every cursor>``, packed here from each
        key's cached wire form and sent on a connection of the pool: redis-py's generic packing
        and reply parsing cost more than the read itself at hundreds of streams."""
        watched = list(self._streams.values())
        parts = [b"*%d\r\n" % (6 + 2 * len(watched)), _XREAD_HEAD]
        parts += [w.packed_key for w in watched]
        parts += [_bulk(w.cursor.encode()) for w in watched]
        pool = client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(b"".join(parts))
            reply = await connection.read_response()
        except BaseException:
            await connection.disconnect()  # it may still owe the reply
            raise
        finally:
            await pool.release(connection)
        return [reply]

    async def _poll_cluster(self, client: Any) -> list[Any]:
        """One XREAD per hash slot (a multi-key command stays in one slot), one pipeline per node."""
        slots: dict[int, dict[str, str]] = {}
        for stream_key, watched in self._streams.items():
            slots.setdefault(key_slot(stream_key.encode()), {})[stream_key] = watched.cursor
        pipe = client.pipeline()
        for cursors in slots.values():
            pipe.xread(cursors, count=READ_BATCH)
        return await pipe.execute()

    def _deliver(self, reply: Any, now: float) -> None:
        for stream_key, entries in reply.items() if isinstance(reply, dict) else reply or []:  # RESP3, RESP2
            watched = self._streams.get(stream_key)
            if watched is None or not entries:
                continue
            watched.cursor = entries[-1][0]
            batch = _Batch(entries)
            for follower in watched.followers:
                follower.put(batch, now)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for watched in self._streams.values():
            for follower in watched.followers:
                if now - follower.last >= follower.wait:
                    follower.put(None, now)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub()
    return hub


streams = StreamManager()
