"""The one way to publish a live update, and the replay log it lives in.

An event is appended to the user's replay stream ``user:{uid}:events`` (the stream id is the
event id) in the same MULTI/EXEC as the change that caused it; once the write is applied the
channel layer (Redis pub/sub) is poked so connected websockets get it at once. The poke is
best effort: it carries the id of the event before it in the stream, so a socket that sees a
break in that chain (a lost or reordered poke) reads what it missed from the stream. A
channel-layer failure never fails, nor noticeably slows, the write that caused the event.

Event data has the REST API's JSON shape: top-level integer timestamps (``...At``, ``after``,
``before``, ``timestamp``; microseconds inside) are rendered as ISO-8601 UTC when staged.

What the stream stores is not that JSON but a compact form of it (``--- stored form`` below, the
one place that reads or writes entries): frames, pokes and replays carry the JSON unchanged.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import msgpack
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from mookti import keys
from mookti.ids import iso
from mookti.redis import Write, get_async_redis, get_redis, register_script

logger = logging.getLogger(__name__)

# Channel-layer message types; the websocket consumer handles them in ``event_message`` and
# ``sockets_close``.
POKE = "event.message"
CLOSE = "sockets.close"
TIMESTAMP_NAMES = frozenset({"after", "before", "timestamp"})
EVENT_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")
ZERO_ID = "0-0"
# A poke that takes longer is abandoned; more pokes than MAX_PENDING waiting (a hung layer)
# are dropped; a failing layer is logged once when it fails and once when it is back.
NOTIFY_TIMEOUT = 10.0
MAX_PENDING = 10_000

# Runs right after the XADD of the same step: the id before the new one (chain link for
# listeners), then trims by age (exactly: usually nothing or one entry) and refreshes the
# idle expiry. KEYS[1] stream;
# ARGV[1] min id to keep, ARGV[2] TTL seconds.
AFTER_APPEND = register_script(
    """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 2)
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if newest[2] then return newest[2][1] end
return ''
"""
)


# --- ids and frames ------------------------------------------------------------------------------
def parse_id(event_id: str) -> tuple[int, int]:
    """``ms-seq`` (or ``ms``) as a tuple that compares like Redis stream ids; ValueError if malformed."""
    match = EVENT_ID.fullmatch(event_id or "")
    if not match:
        raise ValueError(f"not a stream id: {event_id!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def normalize_id(event_id: str) -> str:
    ms, seq = parse_id(event_id)
    return f"{ms}-{seq}"


def user_group(user_id: str) -> str:
    return f"user.{user_id}"


def chat_group(chat_id: str) -> str:
    return f"chat.{chat_id}"


def frame_text(event_id: str, event_type: str, data_json: str, chat_id: str | None = None) -> str:
    """The JSON text of an event frame, built around the already-encoded ``data``."""
    head = f'{{"id":{json.dumps(event_id)},"type":{json.dumps(event_type)},'
    scope = f'"chatId":{json.dumps(chat_id)},' if chat_id else ""
    return f'{head}{scope}"data":{data_json}}}'


def render(data: dict[str, Any]) -> dict[str, Any]:
    """The API's JSON shape: top-level integer timestamps (microseconds) become ISO-8601 UTC."""
    return {name: iso(value) if _is_timestamp(name, value) else value for name, value in data.items()}


def _is_timestamp(name: str, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (name.endswith("At") or name in TIMESTAMP_NAMES)


def _encode(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


# --- stored form ---------------------------------------------------------------------------------
# An entry is always the two fields ``type`` and ``data``: a stream node stores the field names of
# its first entry once, and each later entry with the same names costs only its values. Two forms:
# - compact: ``type`` is the code of a Codec below (Redis keeps it as an integer) and ``data`` the
#   values of the codec's fields, in its order, concatenated: a UUID as its 16 bytes, anything else
#   as one msgpack value (after its Kind's conversion: a timestamp as integer milliseconds, ...).
# - generic: ``type`` is the type name and ``data`` the JSON text. Used for a type without a codec
#   (a new type needs none to work), for data that does not fit its codec, and by every entry
#   written before the compact form (issue 13), which stays readable until retention drops it.
# An event is stored compact only if that decodes to exactly its JSON text. Codes and choices are
# stored for MOOKTI_EVENTS_RETENTION: never renumber or reuse them; data of a new shape gets a new
# code. bench/peer/server.js writes the same form for the events it appends.
@dataclass(frozen=True)
class Kind:
    """How one field is stored: ``pack`` turns a value (never None) into a msgpack value, or with
    ``width`` into that many raw bytes (no None then); ``unpack`` turns it back."""

    pack: Callable[[Any], Any]
    unpack: Callable[[Any], Any]
    width: int = 0


def _same(value: Any) -> Any:
    return value


def _iso_ms(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // MILLISECOND


def _week_number(week: str) -> int:
    year, number = week.split("-W")
    return int(year) * 100 + int(number)


def choice(*values: str) -> Kind:
    """One of ``values``, stored as its index (append new values, never reorder)."""
    return Kind(values.index, values.__getitem__)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = datetime.resolution * 1000
PLAIN = Kind(_same, _same)
ID = Kind(lambda value: uuid.UUID(value).bytes, lambda raw: str(uuid.UUID(bytes=raw)), width=16)
IDS = Kind(
    lambda values: b"".join(uuid.UUID(value).bytes for value in values),
    lambda raw: [str(uuid.UUID(bytes=raw[n : n + 16])) for n in range(0, len(raw), 16)],
)
TIME = Kind(_iso_ms, lambda ms: iso(ms * 1000))  # ISO-8601 with milliseconds, as render() makes it
DATE = Kind(lambda text: date.fromisoformat(text).toordinal(), lambda n: date.fromordinal(n).isoformat())
WEEK = Kind(_week_number, lambda n: f"{n // 100}-W{n % 100:02d}")  # ISO week "2026-W49"
ROLE = choice("user", "assistant", "system")
VISIBILITY = choice("private", "public")


@dataclass(frozen=True)
class Codec:
    """The compact form of one event type whose data has exactly these fields, in this order."""

    code: int
    type: str
    fields: tuple[tuple[str, Kind], ...]


CODECS = {
    codec.type: codec
    for codec in (
        Codec(1, "message.created", (("id", ID), ("chatId", ID), ("role", ROLE))),
        Codec(2, "xp.awarded", (("amount", PLAIN), ("total", PLAIN), ("week", WEEK), ("weekXp", PLAIN))),
        Codec(3, "message.updated", (("id", ID), ("chatId", ID), ("changed", PLAIN))),
        Codec(4, "message.deleted", (("chatId", ID), ("ids", IDS), ("after", TIME))),
        Codec(
            5,
            "chat.created",
            (
                ("id", ID),
                ("userId", ID),
                ("title", PLAIN),
                ("visibility", VISIBILITY),
                ("createdAt", TIME),
                ("lastMessageAt", TIME),
            ),
        ),
        Codec(
            6,
            "chat.updated",
            (("id", ID), ("title", PLAIN), ("visibility", VISIBILITY), ("createdAt", TIME), ("lastMessageAt", TIME)),
        ),
        Codec(7, "chat.deleted", (("id", ID),)),
        Codec(8, "stream.started", (("id", ID), ("chatId", ID), ("createdAt", TIME))),
        Codec(9, "stream.ended", (("id", ID), ("chatId", ID), ("status", PLAIN), ("position", PLAIN))),
        Codec(10, "vote.updated", (("chatId", ID), ("messageId", ID), ("isUpvoted", PLAIN))),
        Codec(
            11,
            "streak.updated",
            (
                ("current", PLAIN),
                ("longest", PLAIN),
                ("freezes", PLAIN),
                ("maxFreezes", PLAIN),
                ("lastActivity", TIME),
                ("lastActivityDate", DATE),
                ("today", DATE),
                ("timezone", PLAIN),
                ("alive", PLAIN),
                ("activeToday", PLAIN),
                ("freezesNeeded", PLAIN),
            ),
        ),
        Codec(
            12,
            "achievement.awarded",
            (("id", PLAIN), ("title", PLAIN), ("description", PLAIN), ("xp", PLAIN), ("awardedAt", TIME)),
        ),
        Codec(13, "document.saved", (("id", ID), ("title", PLAIN), ("kind", PLAIN), ("createdAt", TIME))),
        Codec(14, "user.updated", (("userId", ID), ("changed", PLAIN))),
    )
}
BY_CODE = {codec.code: codec for codec in CODECS.values()}


def stored(event_type: str, data: dict[str, Any], data_json: str) -> dict[str, Any]:
    """The stream entry of an event: ``data`` is the rendered data, ``data_json`` its JSON text."""
    codec = CODECS.get(event_type)
    if codec is not None and [name for name, _ in codec.fields] == list(data):
        try:
            packed = b"".join(_pack(kind, data[name]) for name, kind in codec.fields)
            if _unpack(codec, packed) == data_json:
                return {"type": codec.code, "data": packed}
        except Exception:  # any value the codec cannot take: the generic form takes everything
            pass
    return {"type": event_type, "data": data_json}


def decode(fields: Mapping[bytes, bytes]) -> tuple[str, str] | None:
    """``(type, data JSON)`` of a stream entry as a raw (bytes) client reads it, either form;
    None for a code this process does not know (written by a newer release)."""
    event_type = fields.get(b"type", b"").decode()
    data = fields.get(b"data") or b"{}"
    if not event_type.isdigit():
        return event_type, data.decode()
    codec = BY_CODE.get(int(event_type))
    if codec is None:
        logger.warning("event stream entry with unknown code %s skipped", event_type)
        return None
    return codec.type, _unpack(codec, data)


def _pack(kind: Kind, value: Any) -> bytes:
    if kind.width:
        raw = kind.pack(value)
        if len(raw) != kind.width:
            raise ValueError(f"{len(raw)} bytes, not {kind.width}")
        return raw
    return msgpack.packb(None if value is None else kind.pack(value))


def _unpack(codec: Codec, packed: bytes) -> str:
    reader = msgpack.Unpacker(raw=False)
    reader.feed(packed)
    data = {}
    for name, kind in codec.fields:
        if kind.width:
            data[name] = kind.unpack(reader.read_bytes(kind.width))
        else:
            value = reader.unpack()
            data[name] = None if value is None else kind.unpack(value)
    return _encode(data)


# --- publishing ----------------------------------------------------------------------------------
def stage(
    write: Write,
    user_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    chat_id: str | None = None,
    public: bool = False,
) -> int:
    """Append the event to ``write`` and notify listeners once the write is applied.

    Returns the step index; the step's first reply is the event id. ``public`` also sends
    it to the viewers of a public chat (``chat_id``): only put data there that anyone who
    can read the chat may see.
    """
    rendered = render(data)
    data_json = _encode(rendered)
    fields = stored(event_type, rendered, data_json)  # the chat a frame is scoped to travels in the poke
    stream = keys.events(user_id)

    def append(p: Any) -> None:
        p.xadd(stream, fields, maxlen=settings.MOOKTI_EVENTS_MAXLEN, approximate=True)
        oldest_kept = f"{int(time.time() * 1000) - settings.MOOKTI_EVENTS_RETENTION * 1000}-0"
        AFTER_APPEND(keys=[stream], args=[oldest_kept, settings.MOOKTI_EVENTS_RETENTION], client=p)

    index = write.step(append)

    def after(replies: list[list[Any]]) -> None:
        event_id, prev_id = replies[index][0], replies[index][1] or ZERO_ID
        sends = [(user_group(user_id), _user_poke(event_id, prev_id, event_type, data_json))]
        if public and chat_id:
            sends.append((chat_group(chat_id), _chat_poke(chat_id, user_id, event_id, event_type, data_json)))
        deliver(sends)

    write.on_commit(after)
    return index


def publish(
    user_id: str, event_type: str, data: dict[str, Any], *, chat_id: str | None = None, public: bool = False
) -> str:
    """Publish an event on its own (not part of a larger write); returns its id. Sync code."""
    write = Write()
    stage(write, user_id, event_type, data, chat_id=chat_id, public=public)
    return write.execute()[0][0]


async def apublish(
    user_id: str, event_type: str, data: dict[str, Any], *, chat_id: str | None = None, public: bool = False
) -> str:
    """:func:`publish` for async code (the write runs on a worker thread)."""
    return await sync_to_async(publish, thread_sensitive=False)(
        user_id, event_type, data, chat_id=chat_id, public=public
    )


def notify_chat(chat_id: str, user_id: str, event_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Poke only the viewers of a public chat (the owner's stream and group have the event already)."""
    deliver([(chat_group(chat_id), _chat_poke(chat_id, user_id, event_id, event_type, _encode(render(data))))])


def close_sockets(user_id: str, token_digests: list[str] | None = None) -> None:
    """Ask the user's open sockets that were opened with one of these tokens (by digest; None: every
    socket of the user) to close at once. Best effort like any poke: sockets also re-check their
    credential every ``MOOKTI_WS_RECHECK_BEATS`` heartbeats and close at the token's expiry."""
    deliver([(user_group(user_id), {"type": CLOSE, "digests": token_digests})])


def _user_poke(event_id: str, prev_id: str, event_type: str, data_json: str) -> dict[str, Any]:
    return {"type": POKE, "id": event_id, "prev": prev_id, "text": frame_text(event_id, event_type, data_json)}


def _chat_poke(chat_id: str, user_id: str, event_id: str, event_type: str, data_json: str) -> dict[str, Any]:
    """For viewers: the frame names the chat; ``userId`` (the owner) stays on the server."""
    return {
        "type": POKE,
        "id": event_id,
        "chatId": chat_id,
        "userId": user_id,
        "eventType": event_type,
        "data": json.loads(data_json),
        "text": frame_text(event_id, event_type, data_json, chat_id=chat_id),
    }


# --- channel-layer delivery ----------------------------------------------------------------------
class _Publisher:
    """An event loop on a daemon thread that sends sync callers' pokes without making them wait.

    A web request hands its poke over and returns; the sends run in order on this loop over
    one channel-layer connection. :func:`flush` waits for them (tests, and at exit).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._pid != os.getpid():
            with self._lock:
                if self._loop is None or self._pid != os.getpid():
                    loop = asyncio.new_event_loop()
                    threading.Thread(target=loop.run_forever, name="mookti-events", daemon=True).start()
                    self._loop, self._pid = loop, os.getpid()
                    self._pending = 0
                    self._idle.set()
        return self._loop

    def submit(self, layer: Any, sends: list[tuple[str, dict[str, Any]]]) -> None:
        loop = self._get_loop()
        with self._lock:
            if self._pending >= MAX_PENDING:
                _layer_failed(f"{MAX_PENDING} pokes waiting")
                return
            self._pending += 1
            self._idle.clear()
        loop.call_soon_threadsafe(_spawn, loop, self._run(layer, sends))

    async def _run(self, layer: Any, sends: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            await _send_all(layer, sends)
        finally:
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._idle.set()

    def flush(self, timeout: float) -> bool:
        return self._idle.wait(timeout)


_publisher = _Publisher()
_tasks: set[asyncio.Task] = set()
_layer_down = False


def deliver(sends: list[tuple[str, dict[str, Any]]]) -> None:
    """Send channel-layer messages to groups without waiting; errors are logged, never raised."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _publisher.submit(layer, sends)
    else:  # called from async code: a task on its own loop
        _spawn(loop, _send_all(layer, sends))


def flush(timeout: float = 2.0) -> bool:
    """Wait until the pokes handed over by sync code are sent (or failed); False on timeout."""
    return _publisher.flush(timeout)


def _spawn(loop: asyncio.AbstractEventLoop, coroutine: Any) -> None:
    task = loop.create_task(coroutine)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _send_all(layer: Any, sends: list[tuple[str, dict[str, Any]]]) -> None:
    try:
        async with asyncio.timeout(NOTIFY_TIMEOUT):
            for group, message in sends:
                await layer.group_send(group, message)
    except Exception as exc:  # TimeoutError included
        _layer_failed(str(exc) or type(exc).__name__)
        return
    _layer_back()


def _layer_failed(reason: str) -> None:
    global _layer_down
    if not _layer_down:
        _layer_down = True
        logger.warning("channel layer unavailable, events stay in the replay log: %s", reason)


def _layer_back() -> None:
    global _layer_down
    if _layer_down:
        _layer_down = False
        logger.warning("channel layer available again")


atexit.register(flush)


# --- replay --------------------------------------------------------------------------------------
@dataclass
class Replay:
    """What a client missed: ``frames`` (JSON texts, in order) after the id it asked from.

    ``complete`` is False when that id is older than the retained history (or not from this
    stream): the client must resync. ``head`` is the newest id; ``more`` says a batch limit
    was reached (ask again from ``last_id``).
    """

    head: str
    complete: bool = True
    frames: list[tuple[str, str]] = field(default_factory=list)
    more: bool = False

    @property
    def last_id(self) -> str | None:
        return self.frames[-1][0] if self.frames else None


def is_continuous(after: str, info: dict[str, Any] | None) -> bool:
    """True if every event after ``after`` is still in the stream.

    Trimming removes the oldest entries (Redis 7.0 records no trace of them besides the new
    first entry), XDEL is recorded in ``max-deleted-entry-id``. So the client's last event
    must still be retained (or be the newest id: nothing came after it), and ``0-0`` ("I
    have seen nothing") needs a stream that never lost an entry. An expired and re-created
    stream starts after the client's id, which then reads as trimmed: resync.
    """
    position = parse_id(after)
    if info is None:
        return position == (0, 0)
    newest = parse_id(info["last-generated-id"])
    if position >= newest:
        return position == newest
    if position < parse_id(info.get("max-deleted-entry-id") or ZERO_ID):
        return False
    if position == (0, 0):
        return info.get("entries-added") == info.get("length")
    first = info.get("first-entry")
    return bool(first) and parse_id(first[0]) <= position


async def replay(user_id: str, after: str | None, limit: int = 500) -> Replay:
    """The events after ``after`` (exclusive), or just the head when ``after`` is None.

    One MULTI round trip: the stream's bookkeeping and the entries are read together, so a
    concurrent trim cannot slip between the continuity check and the read.
    """
    stream = keys.events(user_id)
    async with get_async_redis(raw=True).pipeline(transaction=True) as pipe:
        pipe.xinfo_stream(stream)
        if after is not None:
            pipe.xrange(stream, min=f"({after}", max="+", count=limit)
        replies = await pipe.execute(raise_on_error=False)
    info = _text_ids(replies[0]) if isinstance(replies[0], dict) else None
    if isinstance(replies[0], Exception) and "no such key" not in str(replies[0]):
        raise replies[0]
    head = info["last-generated-id"] if info else ZERO_ID
    if after is None:
        return Replay(head=head)
    if not is_continuous(after, info):
        return Replay(head=head, complete=False)
    entries = replies[1] if info else []
    frames = [(entry_id, frame_text(entry_id, *event)) for entry_id, event in _decoded(entries)]
    return Replay(head=head, frames=frames, more=len(entries) >= limit)


def read(user_id: str, start: str = "-", end: str = "+", count: int | None = None) -> list[tuple[str, str, str]]:
    """The user's events as ``(id, type, data JSON)``, oldest first: XRANGE for sync code (tools, tests)."""
    entries = get_redis(raw=True).xrange(keys.events(user_id), min=start, max=end, count=count)
    return [(entry_id, *event) for entry_id, event in _decoded(entries)]


def _decoded(entries: list[tuple[bytes, Mapping[bytes, bytes]]]) -> list[tuple[str, tuple[str, str]]]:
    """Entries of a raw XRANGE as ``(id, (type, data JSON))``, without those :func:`decode` skips."""
    found = ((entry_id.decode(), decode(fields)) for entry_id, fields in entries)
    return [(entry_id, event) for entry_id, event in found if event is not None]


def _text_ids(info: dict[str, Any]) -> dict[str, Any]:
    """XINFO STREAM of a raw client with its ids as text (what :func:`is_continuous` compares)."""
    first = info.get("first-entry")
    return {
        **info,
        "last-generated-id": info["last-generated-id"].decode(),
        "max-deleted-entry-id": (info.get("max-deleted-entry-id") or ZERO_ID.encode()).decode(),
        "first-entry": (first[0].decode(), first[1]) if first else None,
    }


async def has_newer(user_id: str, after: str) -> bool:
    """True if the user's stream has an event after ``after`` (one XRANGE of at most one entry)."""
    return bool(await get_async_redis(raw=True).xrange(keys.events(user_id), min=f"({after}", max="+", count=1))


# --- cleanup -------------------------------------------------------------------------------------
def delete_stream(user_id: str) -> None:
    """A deleted user's replay log goes with them (it holds copies of their messages)."""
    get_redis().delete(keys.events(user_id))
