"""Count Redis round trips per HTTP request (benchmark server only; see ``bench/settings.py``).

A round trip is one write of a request to a Redis socket, followed by reading its replies:
redis-py sends a single command, a pipeline or a whole MULTI/EXEC with one
``send_packed_command`` call, so counting those calls counts round trips (a pipeline of 50
HGETALLs is one). Connection set-up (HELLO, CLIENT SETINFO) and the client's periodic health
PING go through the same method and are counted when they happen inside a request. The sync
client and the asyncio client are counted apart and reported in two response headers.

Live-update pokes are handed by ``mookti.events.deliver`` to a background publisher and sent
after the response (one PUBLISH per group on the pub/sub channel layer). They are counted when
handed over (``X-Redis-Pokes``) and sent outside the request's context, so a poke that happens
to go out before the response is finished is not counted twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from typing import Any

import redis.asyncio.connection
import redis.connection
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

HEADER = "X-Redis-Roundtrips"
ASYNC_HEADER = "X-Redis-Roundtrips-Async"
POKES_HEADER = "X-Redis-Pokes"

_counter: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("redis_roundtrips", default=None)
_originals: dict[tuple[Any, str], Any] = {}


def _count(slot: int) -> None:
    # The holder is a mutable list: contexts copied into threads (sync_to_async) and back
    # (async_to_sync) share it, so every round trip of the request lands in one place.
    holder = _counter.get()
    if holder is not None:
        holder[slot] += 1


def _patch(owner: Any, name: str, replacement: Any) -> None:
    _originals.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, replacement)


def install() -> None:
    """Wrap redis-py's sync and asyncio ``send_packed_command`` (idempotent)."""
    if (redis.connection.AbstractConnection, "send_packed_command") in _originals:
        return
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    @functools.wraps(sync_send)
    def counted_sync(self: Any, command: Any, check_health: bool = True) -> Any:
        _count(0)
        return sync_send(self, command, check_health)

    @functools.wraps(async_send)
    async def counted_async(self: Any, command: Any, check_health: bool = True) -> Any:
        _count(1)
        return await async_send(self, command, check_health)

    _patch(redis.connection.AbstractConnection, "send_packed_command", counted_sync)
    _patch(redis.asyncio.connection.AbstractConnection, "send_packed_command", counted_async)
    from mookti import redis as mookti_redis  # its plan reads write to the connection themselves

    plan_write = mookti_redis._write

    @functools.wraps(plan_write)
    async def counted_plan_write(connection: Any, packed: Any) -> None:
        _count(1)
        await plan_write(connection, packed)

    _patch(mookti_redis, "_write", counted_plan_write)


def uninstall() -> None:
    """Put back everything :func:`install` and the middleware wrapped (tests)."""
    for (owner, name), original in _originals.items():
        setattr(owner, name, original)
    _originals.clear()


@contextlib.contextmanager
def counting() -> Iterator[list[int]]:
    """Count what this context sends: ``[sync round trips, async round trips, pokes handed over]``."""
    holder = [0, 0, 0]
    token = _counter.set(holder)
    try:
        yield holder
    finally:
        _counter.reset(token)


def count_pokes() -> None:
    """Wrap ``mookti.events.deliver`` (idempotent; after Django's apps are loaded)."""
    from mookti import events

    deliver = getattr(events, "deliver", None)
    if deliver is None or (events, "deliver") in _originals:  # absent if live updates change shape
        return

    @functools.wraps(deliver)
    def counted_deliver(sends: list[Any]) -> None:
        holder = _counter.get()
        if holder is not None:
            holder[2] += len(sends)
        contextvars.Context().run(deliver, sends)

    _patch(events, "deliver", counted_deliver)


class RoundtripMiddleware:
    """Outermost middleware: counts the request's round trips into the response headers."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        count_pokes()
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        with counting() as holder:
            response = self.get_response(request)
        return self._stamp(response, holder)

    async def _acall(self, request: Any) -> Any:
        with counting() as holder:
            response = await self.get_response(request)
        return self._stamp(response, holder)

    @staticmethod
    def _stamp(response: Any, holder: list[int]) -> Any:
        response[HEADER] = str(holder[0])
        response[ASYNC_HEADER] = str(holder[1])
        response[POKES_HEADER] = str(holder[2])
        return response
