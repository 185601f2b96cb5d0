"""The one Redis connection factory, the key prefix, and the write-step runner.

Every app builds its key names in its own ``keys`` module through :func:`key`, so a
deployment prefix (``MOOKTI_REDIS_PREFIX``) lands in front of every key and a test run
can live in a namespace of its own.

Writes are expressed as ordered *steps*. A step touches keys of one hash slot only, so it
can run as MULTI/EXEC on Redis Cluster. On a standalone server (the common case, Upstash
included) all steps of a write go out as one MULTI/EXEC: one round trip, fully atomic. On
a cluster they run one after the other, which keeps the write protocol's order: entity
first, index last; unindex first, entity last.

Failure behaviour (docs/operations.md, "Redis outages"):

- No client-side re-send: a command whose reply was lost may have been applied, so redis-py's
  retry is off. A client retries a POST with an ``Idempotency-Key`` instead: inside such a
  request a :class:`Write` carries a guard (:func:`_execute_guarded`; on a cluster one per step,
  in the step's slot), so the retry applies nothing twice, even while the first attempt is still
  stuck in a frozen server.
- Every command has a short timeout (``MOOKTI_REDIS_TIMEOUT``, 2 s): a stalled Redis costs a
  request at most that long before it becomes a 503.
- A circuit breaker: a connect failure or a timeout opens it for ``MOOKTI_REDIS_BREAKER_SECONDS``;
  meanwhile commands fail at once (:class:`CircuitOpen`) instead of queueing on a dead server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import select
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.backoff import NoBackoff
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ExecAbortError, OutOfMemoryError, RedisClusterException, ResponseError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from mookti.ids import current_scope

logger = logging.getLogger(__name__)
Step = Callable[[Any], None]
T = TypeVar("T")
# Redis work written once for sync and async callers: a generator that yields, per round trip,
# either a function queueing commands on a pipeline (it is sent that pipeline's replies) or a
# :class:`Write` (it is sent the write's replies), and returns its result (run_plan / arun_plan).
Plan = Generator[Any, list[Any], T]

# What a Redis outage raises: the cluster client reports unreachable nodes outside RedisError.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)


_lock = threading.Lock()
_clients: dict[tuple[str, bool, bool, float], redis.Redis | RedisCluster] = {}


class CircuitOpen(redis.ConnectionError):
    """Redis failed moments ago: the command is refused without touching the network."""


class Breaker:
    """A circuit breaker per Redis server, shared by every connection of this process to it.

    A connect failure or a command timeout opens it for ``MOOKTI_REDIS_BREAKER_SECONDS``. Then
    one connection probes (half-open) while the others keep failing at once; the probe's first
    answer closes it, its failure opens it again. So during an outage a request fails in
    microseconds, or at most one timeout for the probe, and after the outage the service is back
    within a breaker period. A reset connection alone does not open it: the next checkout
    reconnects, and only if that fails is Redis considered down.
    """

    def __init__(self) -> None:
        self.open_until = 0.0
        self.prober: Any = None
        self._lock = threading.Lock()

    def check(self, connection: Any) -> None:
        if not self.open_until or connection is self.prober:
            return
        with self._lock:
            now = time.monotonic()
            if not self.open_until or connection is self.prober:
                return
            if now < self.open_until:
                raise CircuitOpen("Redis is unavailable (circuit open).")
            self.prober = connection  # the others wait for its answer, or for it to time out
            self.open_until = now + settings.MOOKTI_REDIS_TIMEOUT + settings.MOOKTI_REDIS_BREAKER_SECONDS

    def trip(self) -> None:
        if not self.open_until:  # logged once per outage, not per failed request
            logger.error("Redis unavailable: failing fast, probing every %ss", settings.MOOKTI_REDIS_BREAKER_SECONDS)
        self.open_until = time.monotonic() + settings.MOOKTI_REDIS_BREAKER_SECONDS
        self.prober = None

    def close(self) -> None:
        if self.open_until:
            self.open_until = 0.0
            self.prober = None
            logger.warning("Redis answering again")

    @property
    def is_open(self) -> bool:
        return bool(self.open_until)


_breakers: dict[str, Breaker] = {}
_TRIPPING = (redis.TimeoutError, TimeoutError)


def breaker_for(host: str, port: int | str) -> Breaker:
    """The breaker of the server at ``host:port``."""
    name = f"{host}:{port}"
    found = _breakers.get(name)
    if found is None:
        found = _breakers.setdefault(name, Breaker())
    return found


def _breaker(connection: Any) -> Breaker:
    return breaker_for(connection.host, connection.port)


class _BreakerMixin:
    """Puts the server's :class:`Breaker` in front of a sync connection's connect, send and read."""

    def connect(self) -> None:
        if self._sock is None:
            _breaker(self).check(self)
            try:
                super().connect()
            except (redis.ConnectionError, redis.TimeoutError):
                _breaker(self).trip()
                raise

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _breaker(self).check(self)
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = super().read_response(*args, **kwargs)
        except _TRIPPING:
            _breaker(self).trip()
            raise
        _breaker(self).close()
        return reply


class _AsyncBreakerMixin:
    """:class:`_BreakerMixin` for asyncio connections, and the sync pool's check that an idle
    connection is alive: asyncio's pool asks its stream, which learns of a connection the server
    closed (a restart, ``CLIENT KILL``) only after the event loop has read the close, so a request
    could take a dead connection and fail (no re-send: retries are off). The socket itself knows."""

    async def can_read(self) -> bool:
        if getattr(self, "_writer", None) is not None and _has_input(self):
            return True  # an idle connection with something to read: closed, or stray data (the pool reconnects)
        return await super().can_read()  # type: ignore[misc]

    async def connect(self) -> None:
        if not self.is_connected:
            _breaker(self).check(self)
            try:
                await super().connect()
            except (redis.ConnectionError, redis.TimeoutError):
                _breaker(self).trip()
                raise

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _breaker(self).check(self)
        await super().send_packed_command(command, check_health)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = await super().read_response(*args, **kwargs)
        except _TRIPPING:
            _breaker(self).trip()
            raise
        _breaker(self).close()
        return reply


_CONNECTION_CLASSES = {
    (False, False): type("BreakerConnection", (_BreakerMixin, redis.Connection), {}),
    (False, True): type("BreakerSSLConnection", (_BreakerMixin, redis.SSLConnection), {}),
    (True, False): type("AsyncBreakerConnection", (_AsyncBreakerMixin, redis.asyncio.Connection), {}),
    (True, True): type("AsyncBreakerSSLConnection", (_AsyncBreakerMixin, redis.asyncio.SSLConnection), {}),
}


def _client_options(raw: bool, *, timeout: float | None = None, asynchronous: bool = False) -> dict[str, Any]:
    """Short timeouts, no retries (see the module docstring), the breaker's connection class."""
    timeout = timeout or settings.MOOKTI_REDIS_TIMEOUT
    options: dict[str, Any] = {
        "decode_responses": not raw,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if not settings.REDIS_CLUSTER and not settings.REDIS_URL.startswith("unix:"):
        options["connection_class"] = _CONNECTION_CLASSES[asynchronous, settings.REDIS_URL.startswith("rediss:")]
    return options


class _Pool(redis.ConnectionPool):
    """redis-py's connection pool without the deprecated-arguments check wrapped around every
    ``get_connection`` call (it inspects the call's arguments each time: a few per cent of a small
    request's CPU, issue 16); callers here pass no arguments, so the check has nothing to warn about."""

    get_connection = getattr(redis.ConnectionPool.get_connection, "__wrapped__", redis.ConnectionPool.get_connection)


class _AsyncPool(redis.asyncio.BlockingConnectionPool):
    """:class:`_Pool` for the asyncio client (the same check wraps its ``get_connection``: a sixth
    of a fast-lane read's CPU)."""

    get_connection = getattr(
        redis.asyncio.BlockingConnectionPool.get_connection,
        "__wrapped__",
        redis.asyncio.BlockingConnectionPool.get_connection,
    )


def get_redis(*, raw: bool = False, read_timeout: float | None = None) -> redis.Redis | RedisCluster:
    """The process-wide client for ``REDIS_URL`` (thread-safe pool, decoded str replies).

    ``raw=True`` gives a client with bytes replies, for code that must read any value
    (the admin's raw key browser meets pickled cache entries). ``read_timeout`` (seconds, default
    ``MOOKTI_REDIS_TIMEOUT``) must exceed the longest ``BLOCK`` of the commands sent with it (the
    indexer's blocking reads).
    """
    url, cluster = settings.REDIS_URL, settings.REDIS_CLUSTER
    name = (url, cluster, raw, read_timeout)
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                options = _client_options(raw, timeout=read_timeout)
                if cluster:
                    client = RedisCluster.from_url(url, **options)
                else:  # as redis.Redis.from_url does, with the pool below
                    client = redis.Redis(connection_pool=_Pool.from_url(url, max_connections=256, **options))
                    client.auto_close_connection_pool = True
                _clients[name] = client
    return client


def close_clients() -> None:
    """Drop cached clients (after a fork, or when tests swap ``REDIS_URL``)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _breakers.clear()


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[bool, float | None], Any]] = (
    weakref.WeakKeyDictionary()
)


_last_loop: tuple[asyncio.AbstractEventLoop, dict[tuple[bool, float | None], Any]] | None = None  # the last lookup


def get_async_redis(
    *, raw: bool = False, read_timeout: float | None = None
) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
    """The asyncio client for ``REDIS_URL`` on the running loop (asyncio pools are bound to one loop).

    A blocking pool: a burst of coroutines waits for a free connection instead of failing.
    ``raw=True`` gives bytes replies (binary values: the event stream's compact entries).
    ``read_timeout`` (seconds, default ``MOOKTI_REDIS_TIMEOUT``) must exceed the longest ``BLOCK``
    of the commands sent with it (the stream hub's shared ``XREAD``); each combination has a pool of its own.
    """
    global _last_loop
    loop = asyncio.get_running_loop()
    last = _last_loop  # read once: other threads' loops replace it
    if last is not None and last[0] is loop:  # the common case: the web process's one loop
        clients = last[1]
    else:
        clients = _async_clients.get(loop)
        if clients is None:
            clients = _async_clients[loop] = {}
        _last_loop = (loop, clients)
    client = clients.get((raw, read_timeout))
    if client is None:
        options = _client_options(raw, timeout=read_timeout, asynchronous=True)
        if settings.REDIS_CLUSTER:
            # The cluster client has no blocking pool: past max_connections per node a command fails
            # at once (MaxConnectionsError), so the limit sits above any burst one process serves.
            client = redis.asyncio.cluster.RedisCluster.from_url(settings.REDIS_URL, max_connections=1024, **options)
        else:
            # Maintenance notifications off: while they are on ("auto", the default), the pool skips
            # its check that an idle connection is still alive before handing it out.
            pool = _AsyncPool.from_url(
                settings.REDIS_URL,
                max_connections=128,
                timeout=settings.MOOKTI_REDIS_TIMEOUT,
                maint_notifications_config=MaintNotificationsConfig(enabled=False),
                **options,
            )
            client = redis.asyncio.Redis(connection_pool=pool)
        clients[raw, read_timeout] = client
    return client


def is_cluster() -> bool:
    return bool(settings.REDIS_CLUSTER)


# A prefix other than the deployment's, for a block of maintenance code (see using_prefix).
_prefix_override: ContextVar[str | None] = ContextVar("mookti_key_prefix", default=None)


_deployment_prefix: list[str] = []  # MOOKTI_REDIS_PREFIX, read once (every key name needs it)


def current_prefix() -> str:
    """The key prefix in effect: ``MOOKTI_REDIS_PREFIX``, or the one :func:`using_prefix` set."""
    override = _prefix_override.get()
    if override:
        return override
    if not _deployment_prefix:
        _deployment_prefix.append(settings.MOOKTI_REDIS_PREFIX)
    return _deployment_prefix[0]


@receiver(setting_changed)
def _prefix_changed(setting: str, **kwargs: Any) -> None:
    if setting == "MOOKTI_REDIS_PREFIX":
        _deployment_prefix.clear()


@contextmanager
def using_prefix(prefix: str) -> Iterator[None]:
    """Build key names under another prefix inside the block (compare and check commands, tests)."""
    if "{" in prefix or "}" in prefix:
        raise ValueError("A key prefix must not contain braces (they are hash tags).")
    token = _prefix_override.set(prefix)
    try:
        yield
    finally:
        _prefix_override.reset(token)


def key(name: str) -> str:
    """Prefix a key name. Only ``keys`` modules call this."""
    return f"{current_prefix()}{name}"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a SCAN MATCH pattern (a prefix may hold ``*?[]``)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def pipeline(transaction: bool = False):
    """A pipeline for reads: one round trip, any slots (split per node on a cluster)."""
    return get_redis().pipeline(transaction=transaction)


def run_plan(plan: Plan[T]) -> T:
    """Run a :data:`Plan` with the sync client (one pipeline per round trip)."""
    try:
        work = next(plan)
        while True:
            if isinstance(work, Write):
                replies = work.execute()
            else:
                pipe = pipeline()
                work(pipe)
                replies = pipe.execute()
            work = plan.send(replies)
    except StopIteration as done:
        return done.value


async def arun_plan(plan: Plan[T]) -> T:
    """Run a :data:`Plan` on the running event loop (no worker thread)."""
    client = get_async_redis()
    run = _execute_reads if isinstance(client, redis.asyncio.Redis) else _execute_pipeline
    try:
        work = next(plan)
        while True:
            if isinstance(work, Write):
                replies = await work.aexecute()
            else:
                pipe = client.pipeline(transaction=False)
                work(pipe)
                replies = await run(client, pipe)
            work = plan.send(replies)
    except StopIteration as done:
        return done.value


async def _execute_pipeline(client: Any, pipe: Any) -> list[Any]:
    return await pipe.execute()


async def _execute_reads(client: redis.asyncio.Redis, pipe: Any) -> list[Any]:
    """A plan's round trip on a standalone Redis: what ``pipe.execute()`` does, with one timeout for
    the whole round trip instead of a timer per reply and per write (:func:`_round_trip`). Replies
    get the client's response callbacks; the first error reply is raised once every reply is read
    (the connection stays in step)."""
    commands = pipe.command_stack
    if not commands:
        return []

    async def read(connection: Any) -> list[Any]:
        return [await _read_reply(client, connection, args[0], options) for args, options in commands]

    replies = await _round_trip(client, [args for args, _ in commands], read)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


async def _execute_transaction(client: redis.asyncio.Redis, pipe: Any) -> list[Any]:
    """``pipe.execute()`` of a MULTI/EXEC pipeline on a standalone Redis, as :func:`_execute_reads`
    does a read: one write, the replies read under one timeout, the results given the client's
    response callbacks. A command Redis refused to queue aborts the whole transaction (raised); an
    error reply among the results is raised after all were read, as redis-py raises it."""
    commands = pipe.command_stack
    if not commands:
        return []

    async def read(connection: Any) -> list[Any]:
        await connection.read_response(timeout=math.inf)  # MULTI: OK
        refused = []
        for _ in commands:
            try:
                await connection.read_response(timeout=math.inf)  # QUEUED
            except ResponseError as exc:
                refused.append(exc)
        try:
            results = await connection.read_response(timeout=math.inf)
        except ExecAbortError:
            raise (refused[0] if refused else ExecAbortError("Transaction aborted")) from None
        return results

    results = await _round_trip(client, [("MULTI",), *(args for args, _ in commands), ("EXEC",)], read)
    replies = []
    for (args, options), result in zip(commands, results, strict=True):
        if isinstance(result, ResponseError):
            raise result
        replies.append(_with_callback(client, args[0], options, result))
    return replies


async def _round_trip(client: redis.asyncio.Redis, commands: list[Any], read: Callable[[Any], Any]) -> Any:
    """Send ``commands`` (packed by hiredis) in one write and ``read`` their replies, under one
    timeout, on a connection from the loop's :class:`_IdleConnections`. redis-py's asyncio pipeline
    and blocking pool spent more than the rest of a small request on their bookkeeping (issue 16).
    A timeout drops the connection and opens the breaker as a per-reply timeout would; any failure
    drops it."""
    idle = _IdleConnections.of(client)
    connection = await idle.take()
    try:
        async with asyncio.timeout(connection.socket_timeout):
            _breaker(connection).check(connection)
            await _write(connection, [hiredis.pack_command(tuple(command)) for command in commands])
            result = await read(connection)
    except BaseException as exc:
        await connection.disconnect(nowait=True)
        await idle.pool.release(connection)
        if isinstance(exc, TimeoutError):
            _breaker(connection).trip()
            raise redis.TimeoutError("Timeout talking to Redis") from None
        if isinstance(exc, OSError):
            raise redis.ConnectionError(f"Error talking to Redis: {exc}") from exc
        raise
    await idle.give_back(connection)
    return result


async def _write(connection: Any, packed: list[bytes]) -> None:
    """Send one round trip's commands (bench.roundtrips counts these calls as round trips)."""
    connection._writer.writelines(packed)
    await connection._writer.drain()


class _IdleConnections:
    """The idle connections of one event loop's asyncio client for plan reads: a stack, taken from
    and given back to without the pool's locks, timers and metrics hooks. A connection is checked
    as the pool checks it (open, nothing to read); beyond ``KEEP`` idle ones go back to the pool,
    which also makes the new ones (and waits, when all are in use)."""

    KEEP = 32

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.stack: list[Any] = []

    @classmethod
    def of(cls, client: redis.asyncio.Redis) -> _IdleConnections:
        idle = getattr(client, "_mookti_idle", None)
        if idle is None:
            idle = client._mookti_idle = cls(client.connection_pool)  # type: ignore[attr-defined]
        return idle

    async def take(self) -> Any:
        while self.stack:
            connection = self.stack.pop()
            if connection.is_connected and not _has_input(connection):
                return connection
            await connection.disconnect(nowait=True)
            await self.pool.release(connection)
        return await self.pool.get_connection()  # connected and checked by the pool

    async def give_back(self, connection: Any) -> None:
        if len(self.stack) < self.KEEP:
            self.stack.append(connection)
        else:
            await self.pool.release(connection)


def _has_input(connection: Any) -> bool:
    """True if an idle connection's socket has something to read: the server closed it, or stray data."""
    sock = connection._writer.transport.get_extra_info("socket")
    return sock is None or bool(select.select([sock.fileno()], [], [], 0)[0])


async def _read_reply(client: redis.asyncio.Redis, connection: Any, command: str, options: dict[str, Any]) -> Any:
    """One reply, as ``client.parse_response`` makes it (an error reply is returned, not raised)."""
    try:
        reply = await connection.read_response(disable_decoding=NEVER_DECODE in options, timeout=math.inf)
    except ResponseError as exc:
        return options.get(EMPTY_RESPONSE, exc)
    return _with_callback(client, command, options, reply)


def _with_callback(client: redis.asyncio.Redis, command: str, options: dict[str, Any], reply: Any) -> Any:
    """``reply`` through the client's response callback for ``command`` (HGETALL -> dict, ...)."""
    callback = client.response_callbacks.get(command)
    if callback is None:
        return reply
    kwargs = {name: value for name, value in options.items() if name not in _NOT_FOR_CALLBACKS}
    return callback(reply, **kwargs)


_NOT_FOR_CALLBACKS = frozenset({NEVER_DECODE, EMPTY_RESPONSE, "keys"})


class KeyExists(Exception):
    """A key a :class:`Write` requires to be absent exists (nothing of the write was applied)."""


def _next_guard() -> tuple[str, int, bool]:
    """(guard key, TTL ms, remember) for the next write: the request scope's n-th write's guard,
    kept for the scope's lifetime; outside a scope a throw-away one (only a create's absent-key
    check uses it, and it is not remembered)."""
    scope = current_scope()
    if scope is None:
        return key(f"write:{uuid.uuid4().hex}"), 1, False
    scope.writes += 1
    return key(f"write:{scope.token}:{scope.writes}"), settings.MOOKTI_IDEMPOTENCY_TTL * 1000, True


def next_guard_token() -> tuple[str, int] | None:
    """(token, TTL ms) naming the next write of the request's idempotency scope, or None outside one.

    For a write that keeps its own guard inside its Lua step, in its own slot (a document save):
    it takes the same place in the scope's sequence of writes as a :class:`Write`, so a replay
    computes the same token.
    """
    scope = current_scope()
    if scope is None:
        return None
    scope.writes += 1
    return f"{scope.token}:{scope.writes}", settings.MOOKTI_IDEMPOTENCY_TTL * 1000


class Write:
    """An ordered set of write steps plus callbacks that run once they are applied.

    Each step queues commands on keys of one hash slot. :meth:`execute` runs them as the
    module docstring says (one guarded MULTI/EXEC standalone, in order per slot on a cluster)
    and hands every callback the replies of each step, so e.g. an event's stream id (the XADD
    reply) can be pushed to listeners afterwards.

    ``absent``: keys that must not exist (a create), checked in the same atomic step
    (:class:`KeyExists`, nothing applied); on a cluster that is the first step, whose slot they
    must share. ``frees_memory``: a delete. A full Redis refuses every command inside MULTI, so
    then its commands run without one, in protocol order (removals first, :func:`_run_freeing`).
    """

    def __init__(self, *, absent: tuple[str, ...] = (), frees_memory: bool = False) -> None:
        self._steps: list[Step] = []
        self._callbacks: list[Callable[[list[list[Any]]], None]] = []
        self.absent = absent
        self.frees_memory = frees_memory
        # True when the guard showed this write was applied before (a replay): its replies are
        # None and its callbacks did not run.
        self.applied_before = False

    def __bool__(self) -> bool:
        return bool(self._steps)

    def step(self, fn: Step) -> int:
        """Add a step; returns its index into the replies given to callbacks."""
        self._steps.append(fn)
        return len(self._steps) - 1

    def on_commit(self, fn: Callable[[list[list[Any]]], None]) -> None:
        self._callbacks.append(fn)

    def execute(self) -> list[list[Any]]:
        if is_cluster():
            replies = self._run_guarded_in_order() if current_scope() or self.absent else _run_in_order(self._steps)
        else:
            try:
                replies = self._run_atomic()
            except ResponseError as exc:
                if not (self.frees_memory and is_out_of_memory(exc)):
                    raise
                replies = _run_freeing(self._steps)
        if replies is None:
            self.applied_before = True
            return [[None] * count for count in self._counts]
        if self.applied_before:  # a cluster replay that completed what the first attempt began
            return replies
        for callback in self._callbacks:
            callback(replies)
        return replies

    def runs_on_loop(self) -> bool:
        """True if :meth:`aexecute` runs this write on the event loop itself: the plain case, one
        unguarded MULTI/EXEC on a standalone Redis (no idempotency scope, no absent keys, no delete)."""
        return not (is_cluster() or current_scope() or self.absent or self.frees_memory)

    async def aexecute(self) -> list[list[Any]]:
        """:meth:`execute` for async code: the plain case on the running loop (asyncio client), any
        other in a worker thread (the guarded and cluster paths are synchronous)."""
        if not self.runs_on_loop():
            return await asyncio.to_thread(self.execute)
        client = get_async_redis()
        pipe = client.pipeline(transaction=True)
        bounds = self._queue(pipe)
        flat = await _execute_transaction(client, pipe)  # type: ignore[arg-type]
        replies = [flat[a:b] for a, b in bounds]
        for callback in self._callbacks:
            callback(replies)
        return replies

    def _queue(self, pipe: Any) -> list[tuple[int, int]]:
        """Queue every step on ``pipe``; each step's (start, end) among the pipeline's replies."""
        bounds = []
        for step in self._steps:
            start = len(pipe)
            step(pipe)
            bounds.append((start, len(pipe)))
        self._counts = [b - a for a, b in bounds]
        return bounds

    def _run_atomic(self) -> list[list[Any]] | None:
        """One MULTI/EXEC; guarded inside an idempotency scope or when keys must be absent."""
        pipe = get_redis().pipeline(transaction=True)
        bounds = self._queue(pipe)
        if current_scope() is None and not self.absent:
            flat = pipe.execute() if len(pipe) else []
        else:
            flat = _execute_guarded(pipe, *_next_guard(), self.absent)
            if flat is None:
                return None
        return [flat[a:b] for a, b in bounds]

    def _run_guarded_in_order(self) -> list[list[Any]] | None:
        """A cluster: each step its own guarded MULTI/EXEC on its slot's node, in protocol order.

        Step ``i`` carries the guard ``<write's guard>:{tag}:i`` in its own slot, so a replay skips
        the steps the first attempt applied and applies the rest (a first attempt cut off after
        its entity step is completed, not repeated); ``absent`` keys are checked in the first
        step, whose slot they must share. None when every step was applied before.
        """
        client = get_redis()
        guard, ttl, remember = _next_guard()
        replies: list[list[Any]] = []
        self._counts = []
        applied = 0
        for index, step in enumerate(self._steps):
            # queued on a plain pipeline (its commands are readable), then handed to the slot's node
            staged = client.get_default_node().redis_connection.pipeline(transaction=True)
            step(staged)
            self._counts.append(len(staged.command_stack))
            if not staged.command_stack:
                replies.append([])
                continue
            slot = client.determine_slot(*staged.command_stack[0][0])
            pipe = client.nodes_manager.get_node_from_slot(slot).redis_connection.pipeline(transaction=True)
            for args, options in staged.command_stack:
                pipe.pipeline_execute_command(*args, **options)
            absent = self.absent if index == 0 else ()
            step_guard = f"{guard}:{{{slot_tag(slot)}}}:{index}"
            flat = _execute_guarded(pipe, step_guard, ttl, remember, absent)
            if flat is None:
                applied += 1
                flat = [None] * self._counts[-1]
            replies.append(flat)
        if applied and applied == sum(1 for count in self._counts if count):
            return None
        self.applied_before = applied > 0
        return replies


@functools.cache
def _slot_tags() -> list[str]:
    """For each of the 16384 cluster slots, a short hash tag that maps to it (computed once)."""
    tags: list[str | None] = [None] * 16384
    left, n = 16384, 0
    while left:
        tag = format(n, "x")
        slot = key_slot(tag.encode())
        if tags[slot] is None:
            tags[slot] = tag
            left -= 1
        n += 1
    return tags  # type: ignore[return-value]


def slot_tag(slot: int) -> str:
    """A hash tag (the text inside ``{...}``) whose keys live in ``slot``."""
    return _slot_tags()[slot]


# KEYS[1] the write's guard, KEYS[2...] keys that must be absent; ARGV[1] the guard's TTL (ms).
# Runs after WATCH guard, before MULTI: touching the guard makes the EXEC that follows abort.
# Replies 0 (go ahead), 1 (applied before), 2 (a key that must be absent exists; remembered, so a
# replay of the same write is the same conflict).
GUARD_CHECK = """
local seen = redis.call('GET', KEYS[1])
if seen then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  if seen == 'conflict' then return 2 end
  return 1
end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('SET', KEYS[1], 'conflict', 'PX', ARGV[1])
    return 2
  end
end
return 0
"""


def _execute_guarded(pipe: Any, guard: str, ttl: int, remember: bool, absent: tuple[str, ...]) -> list[Any] | None:
    """Run a transaction pipeline's commands once per ``guard``, in one round trip.

    Sends ``WATCH guard; EVAL GUARD_CHECK; MULTI; <commands>; SET guard 1; EXEC``. The EXEC
    aborts when the guard already exists (this write was applied: None is returned), when a
    key of ``absent`` exists (:class:`KeyExists`), or when a concurrent copy of the same write
    set the guard first. So a write re-sent after a lost reply, even while the first copy is
    still stuck in a frozen server, is applied exactly once.
    """
    commands = pipe.command_stack
    if not commands:
        return []
    conn = pipe.connection_pool.get_connection()
    try:
        packed = conn.pack_commands(
            [
                ("WATCH", guard),
                ("EVAL", GUARD_CHECK, 1 + len(absent), guard, *absent, ttl),
                ("MULTI",),
                *(args for args, _ in commands),
                *([("SET", guard, "1", "PX", ttl)] if remember else []),
                ("EXEC",),
            ]
        )
        conn.send_packed_command(packed)
        conn.read_response()  # WATCH
        check = int(conn.read_response())
        conn.read_response()  # MULTI
        errors: list[Exception] = []
        for _ in range(len(commands) + remember):
            try:
                conn.read_response()  # QUEUED (or a refusal, e.g. OOM: EXEC then aborts)
            except ResponseError as exc:
                errors.append(exc)
        try:
            response = conn.read_response()
        except ExecAbortError:
            raise errors[0] if errors else ExecAbortError("Transaction discarded.") from None
    except BaseException:
        conn.disconnect()  # it may hold unread replies
        raise
    finally:
        pipe.connection_pool.release(conn)
        pipe.reset()
    if check == 2:
        raise KeyExists(absent)
    if response is None:
        return None  # applied before, by this or a concurrent copy
    data = []
    for reply, (args, options) in zip(response[: len(commands)], commands, strict=True):
        if isinstance(reply, Exception):
            raise reply
        options.pop("keys", None)
        callback = pipe.response_callbacks.get(args[0])
        data.append(callback(reply, **options) if callback else reply)
    return data


def is_out_of_memory(exc: BaseException) -> bool:
    """Redis refused a write because ``maxmemory`` is reached (``-OOM``, also inside MULTI)."""
    return isinstance(exc, OutOfMemoryError) or (isinstance(exc, ResponseError) and str(exc).startswith("OOM"))


def _run_freeing(steps: list[Step]) -> list[list[Any]]:
    """A delete on a full Redis: the commands in order, outside MULTI (which a full Redis refuses
    whole), so the removals free memory. Commands that add data (the outbox entry, the event) and
    were refused before the removals freed enough are sent once more; if they fail again the error
    is raised, and what is left behind is what ``manage.py repair`` finds."""
    pipe = get_redis().pipeline(transaction=False)
    bounds = []
    for step in steps:
        start = len(pipe)
        step(pipe)
        bounds.append((start, len(pipe)))
    commands = list(pipe.command_stack)
    flat = pipe.execute(raise_on_error=False)
    refused = [i for i, reply in enumerate(flat) if is_out_of_memory(reply)]
    if refused:
        retry = get_redis().pipeline(transaction=False)
        for i in refused:
            args, options = commands[i]
            retry.execute_command(*args, **options)
        for i, reply in zip(refused, retry.execute(raise_on_error=False), strict=True):
            flat[i] = reply
    for reply in flat:
        if isinstance(reply, Exception):
            raise reply
    return [flat[a:b] for a, b in bounds]


def _run_in_order(steps: list[Step]) -> list[list[Any]]:
    """Each step its own MULTI/EXEC, in order (a cluster; a delete on a full Redis)."""
    client = get_redis()
    grouped = []
    for step in steps:
        pipe = client.pipeline(transaction=True)
        step(pipe)
        grouped.append(pipe.execute() if len(pipe) else [])
    return grouped


def register_script(source: str) -> LuaScript:
    return LuaScript(source)


class LuaScript:
    """A Lua script kept next to the code that calls it.

    Called on a pipeline it queues EVAL with the source: redis-py's ``Script`` would add a
    SCRIPT EXISTS round trip to every pipeline, and an EVALSHA inside MULTI that meets an
    empty script cache (e.g. after a restart) fails without rolling back its neighbours.
    Called directly it uses EVALSHA with a NOSCRIPT fallback.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._bound: dict[int, Any] = {}

    def __call__(self, keys: list[str], args: list[Any], client: Any = None) -> Any:
        if client is not None:
            # execute_command: a cluster pipeline routes EVAL by its keys but has no .eval()
            return client.execute_command("EVAL", self.source, len(keys), *keys, *args)
        target = get_redis()
        script = self._bound.get(id(target))
        if script is None:
            script = self._bound[id(target)] = target.register_script(self.source)
        return script(keys=keys, args=args)


# KEYS: hashes. Replies each one's HGETALL (a flat field/value list) in one command: a page of 20
# chats is one command to send and one reply to parse, not 20 (issue 16). KEYS name several slots,
# so only on a standalone Redis; a cluster pipeline sends one HGETALL per hash (queue_hashes).
HGETALL_MANY = LuaScript(
    """
local found = {}
for i, key in ipairs(KEYS) do found[i] = redis.call('HGETALL', key) end
return found
"""
)


def queue_hashes(pipe: Any, names: list[str]) -> None:
    """Queue reading the hashes ``names`` as the last commands of ``pipe``; :func:`hashes_of` gets
    them from the pipeline's replies."""
    if is_cluster():
        for name in names:
            pipe.hgetall(name)
    else:
        HGETALL_MANY(keys=names, args=[], client=pipe)


def hashes_of(replies: list[Any], count: int) -> list[dict[str, Any]]:
    """The ``count`` hashes :func:`queue_hashes` queued, from the end of ``replies``, as dicts."""
    if is_cluster():
        return replies[len(replies) - count :]
    return [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in replies[-1]]


def ping() -> bool:
    try:
        return bool(get_redis().ping())
    except REDIS_ERRORS:
        return False


def delete_prefix(prefix: str, client: Any = None, batch_size: int = 500) -> int:
    """UNLINK every key under ``prefix`` (a test run's or a benchmark's namespace); returns the count.

    SCAN-based: for maintenance, tests and tools only, never a request path. One pipelined
    round trip per batch; keys are unlinked one by one, so it works across cluster slots too.
    An empty or one-character prefix is refused: it would match (nearly) every key of the server.
    """
    if len(prefix) < 2:
        raise ValueError(f"refusing to delete every key under the prefix {prefix!r}")
    client = client or get_redis()
    pattern = glob_escape(prefix) + "*"
    removed = 0
    batch: list[Any] = []

    def flush() -> int:
        pipe = client.pipeline(transaction=False)
        for name in batch:
            pipe.unlink(name)
        batch.clear()
        return sum(pipe.execute())

    for name in client.scan_iter(match=pattern, count=1000):
        batch.append(name)
        if len(batch) >= batch_size:
            removed += flush()
    if batch:
        removed += flush()
    return removed
