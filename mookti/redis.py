"""The one Redis connection factory, the key prefix, and the write-step runner.

Every app builds its key names in its own ``keys`` module through :func:`key`, so a
deployment prefix (``MOOKTI_REDIS_PREFIX``) lands in front of every key and a test run
can live in a namespace of its own.

Writes are expressed as ordered *steps*. A step touches keys of one hash slot only, so it
can run as MULTI/EXEC on Redis Cluster. On a standalone server (the common case, Upstash
included) all steps of a write go out as one MULTI/EXEC: one round trip, fully atomic. On
a cluster they run one after the other, which keeps the write protocol's order: entity
first, index last; unindex first, entity last.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
from django.conf import settings
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

Step = Callable[[Any], None]

# What a Redis outage raises: the cluster client reports unreachable nodes outside RedisError.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)

# Seconds a reply may take; blocking reads that wait longer ask for a client with a longer one.
SOCKET_TIMEOUT = 10.0

_lock = threading.Lock()
_clients: dict[tuple[str, bool, bool, float], redis.Redis | RedisCluster] = {}


def _client_options(raw: bool, read_timeout: float = SOCKET_TIMEOUT) -> dict[str, Any]:
    # No health_check_interval: it sends a PING before any command on a connection idle that long,
    # which a per-command-billed Redis charges for; a dropped connection is retried instead.
    return {
        "decode_responses": not raw,
        "socket_timeout": read_timeout,
        "socket_connect_timeout": 5,
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }


def get_redis(*, raw: bool = False, read_timeout: float = SOCKET_TIMEOUT) -> redis.Redis | RedisCluster:
    """The process-wide client for ``REDIS_URL`` (thread-safe pool, decoded str replies).

    ``raw=True`` gives a client with bytes replies, for code that must read any value
    (the admin's raw key browser meets pickled cache entries). ``read_timeout`` (seconds) must
    exceed the longest ``BLOCK`` of the commands sent with it (the indexer's blocking reads).
    """
    url, cluster = settings.REDIS_URL, settings.REDIS_CLUSTER
    name = (url, cluster, raw, read_timeout)
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                options = _client_options(raw, read_timeout)
                if cluster:
                    client = RedisCluster.from_url(url, **options)
                else:
                    client = redis.Redis.from_url(url, max_connections=256, **options)
                _clients[name] = client
    return client


def close_clients() -> None:
    """Drop cached clients (after a fork, or when tests swap ``REDIS_URL``)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def get_async_redis() -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
    """The asyncio client for ``REDIS_URL`` on the running loop (asyncio pools are bound to one loop).

    A blocking pool: a burst of coroutines waits for a free connection instead of failing.
    """
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        options = _client_options(raw=False)
        if settings.REDIS_CLUSTER:
            client = redis.asyncio.cluster.RedisCluster.from_url(settings.REDIS_URL, **options)
        else:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                settings.REDIS_URL, max_connections=128, timeout=10, **options
            )
            client = redis.asyncio.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client


def is_cluster() -> bool:
    return bool(settings.REDIS_CLUSTER)


# A prefix other than the deployment's, for a block of maintenance code (see using_prefix).
_prefix_override: ContextVar[str | None] = ContextVar("mookti_key_prefix", default=None)


def current_prefix() -> str:
    """The key prefix in effect: ``MOOKTI_REDIS_PREFIX``, or the one :func:`using_prefix` set."""
    return _prefix_override.get() or settings.MOOKTI_REDIS_PREFIX


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


class Write:
    """An ordered set of write steps plus callbacks that run once they are applied.

    Each step queues commands on keys of one hash slot. :meth:`execute` runs them as the
    module docstring says (one MULTI/EXEC standalone, in order per slot on a cluster) and
    hands every callback the replies of each step, so e.g. an event's stream id (the XADD
    reply) can be pushed to listeners afterwards.
    """

    def __init__(self) -> None:
        self._steps: list[Step] = []
        self._callbacks: list[Callable[[list[list[Any]]], None]] = []

    def __bool__(self) -> bool:
        return bool(self._steps)

    def step(self, fn: Step) -> int:
        """Add a step; returns its index into the replies given to callbacks."""
        self._steps.append(fn)
        return len(self._steps) - 1

    def on_commit(self, fn: Callable[[list[list[Any]]], None]) -> None:
        self._callbacks.append(fn)

    def execute(self) -> list[list[Any]]:
        replies = _run_grouped(self._steps)
        for callback in self._callbacks:
            callback(replies)
        return replies


def _run_grouped(steps: list[Step]) -> list[list[Any]]:
    client = get_redis()
    if not is_cluster():
        pipe = client.pipeline(transaction=True)
        bounds = []
        for step in steps:
            start = len(pipe)
            step(pipe)
            bounds.append((start, len(pipe)))
        flat = pipe.execute() if len(pipe) else []
        return [flat[a:b] for a, b in bounds]
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
