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
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from django.conf import settings

from mookti import events
from mookti.errors import Conflict, DomainError, NotFound, PayloadTooLarge
from mookti.ids import now_us
from mookti.redis import REDIS_ERRORS, Write, get_async_redis, get_redis, pipeline, register_script
from storage import keys
from storage.managers.chats import decode_chat, require_owned, require_readable

STATUSES = ("streaming", "done", "failed", "stale")
END_STATUSES = ("done", "failed")
READ_BATCH = 1000
HUB_BLOCK_MS = 25
QUEUE_SIZE = 256
_LOOKUP_CACHE_SIZE = 65_536


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

    async def follow(self, located: Located, start: int) -> AsyncIterator[list[tuple[int, str]] | str | None]:
        """Chunks from position ``start`` on, then live ones, until the end.

        Yields lists of ``(position after the chunk, text)`` (whatever arrived together), ``None``
        when nothing came for a while (a keep-alive), and last the end status (a string: done,
        failed, stale, or expired when the buffer vanished under a silent stream).
        """
        client = get_async_redis()
        stream_key = located.keys[1]
        hub = _hub()
        queue = hub.watch(stream_key, start)
        wait = min(conf("HEARTBEAT"), conf("STALE_AFTER"))
        position = start
        try:
            pending = await _read(client, stream_key, position)
            while True:
                batch, end, gap = [], None, False
                for seq, fields in pending:
                    if seq <= position:
                        continue
                    if seq > position + 1:  # the hub's batch skipped some: read them
                        gap = True
                        break
                    if "end" in fields:
                        end = fields["end"]
                        break
                    position = seq
                    batch.append((position, fields["c"]))
                if batch:
                    yield batch
                if end is not None:
                    yield end
                    return
                if gap:
                    pending = await _read(client, stream_key, position)
                    continue
                try:
                    pending = await asyncio.wait_for(queue.get(), timeout=wait)
                except TimeoutError:
                    pending = await _read(client, stream_key, position)
                    if pending:
                        continue
                    status = await self._check_silent(client, located)
                    if status == "expired":
                        yield status
                        return
                    pending = await _read(client, stream_key, position)
                    if not pending:
                        yield None
        finally:
            hub.unwatch(stream_key, queue)

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


async def _read(client: Any, stream_key: str, position: int) -> list[tuple[int, dict[str, str]]]:
    """Buffered entries after ``position`` (at most READ_BATCH; the caller comes back for more)."""
    entries = await client.xrange(stream_key, f"0-{position + 1}", "+", count=READ_BATCH)
    return [(_seq(entry_id), fields) for entry_id, fields in entries]


class _Hub:
    """One ``XREAD BLOCK`` over every stream followed on this event loop.

    Followers register a queue per stream key; the hub hands each new batch of entries to every
    queue of its key. A full queue drops the batch: its follower sees the gap in the dense
    positions, or times out, and reads the buffer itself, so nothing is lost either way.
    """

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue]] = {}
        self._cursors: dict[str, str] = {}
        self._task: asyncio.Task | None = None
        self._client: Any = None

    def watch(self, stream_key: str, position: int) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        if stream_key not in self._queues:
            self._queues[stream_key] = set()
            self._cursors[stream_key] = f"0-{position}"
        self._queues[stream_key].add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def unwatch(self, stream_key: str, queue: asyncio.Queue) -> None:
        queues = self._queues.get(stream_key)
        if queues is None:
            return
        queues.discard(queue)
        if not queues:
            del self._queues[stream_key]
            del self._cursors[stream_key]

    async def _run(self) -> None:
        if self._client is None:
            self._client = redis.asyncio.Redis.from_url(settings.REDIS_URL, decode_responses=True)
        while self._cursors:
            try:
                reply = await self._client.xread(dict(self._cursors), block=HUB_BLOCK_MS, count=READ_BATCH)
            except REDIS_ERRORS:
                await asyncio.sleep(0.5)  # followers fall back to their own reads meanwhile
                continue
            for stream_key, entries in reply or []:
                if stream_key not in self._cursors or not entries:
                    continue
                self._cursors[stream_key] = entries[-1][0]
                batch = [(_seq(entry_id), fields) for entry_id, fields in entries]
                for queue in self._queues[stream_key]:
                    if not queue.full():
                        queue.put_nowait(batch)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub()
    return hub


streams = StreamManager()
