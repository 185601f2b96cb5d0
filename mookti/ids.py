"""Ids and time: what may go into a key name, new ids, and timestamps.

Timestamps are stored as integer microseconds since the epoch (exact in a ZSET score,
which holds integers up to 2**53) and rendered as ISO-8601 UTC at the API edge. Server
clocks give millisecond precision, like the JavaScript clients, so a timestamp read from the
API and sent back (e.g. "delete versions after") names exactly the same instant.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# UUIDs, ULIDs, nanoids and similar short tokens: no braces, colons, whitespace or control chars.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidId(ValueError):
    pass


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(ID_PATTERN.fullmatch(value))


def check_id(value: object, field: str = "id") -> str:
    if not is_valid_id(value):
        raise InvalidId(f"{field}: must be 1-100 letters, digits, '-', '_' or '.' (e.g. a UUID).")
    return value  # type: ignore[return-value]


@dataclass
class Scope:
    """A request with an ``Idempotency-Key``: ids, time and write guards derive from it.

    ``token`` names the request (caller, path, key), ``start_ms`` is when its first attempt
    began. A replay runs with the same scope, so it computes the same ids and timestamps and
    its guarded writes (:class:`mookti.redis.Write`) are no-ops where the first attempt applied them.
    """

    token: str
    start_ms: int
    replay: bool = False
    fingerprint: str = ""  # the request body's digest: a retry must send the same
    ids: int = 0
    writes: int = 0


_scope: ContextVar[Scope | None] = ContextVar("mookti_idempotency_scope", default=None)


@contextmanager
def idempotency_scope(scope: Scope) -> Iterator[Scope]:
    handle = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(handle)


def current_scope() -> Scope | None:
    return _scope.get()


def new_id() -> str:
    """A UUIDv7 string: unique and time-ordered, so equal timestamps still sort by creation.

    Inside an idempotency scope the n-th id of the request is the same on every attempt.
    """
    scope = _scope.get()
    if scope is None:
        ms = time.time_ns() // 1_000_000
        rand = int.from_bytes(os.urandom(10), "big")
    else:
        scope.ids += 1
        ms = scope.start_ms
        rand = int.from_bytes(hashlib.sha256(f"{scope.token}:{scope.ids}".encode()).digest()[:10], "big")
    value = (
        (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | ((rand >> 68) & 0xFFF) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    )
    return str(uuid.UUID(int=value))


def now_us() -> int:
    """Now, at millisecond precision (as JavaScript's Date), so an ISO string round-trips exactly.

    Inside an idempotency scope: when the request's first attempt began.
    """
    scope = _scope.get()
    if scope is not None:
        return scope.start_ms * 1000
    return time.time_ns() // 1_000_000 * 1000


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)  # exact, also before 1970


def from_us(value: int | str) -> datetime:
    value = int(value)
    return datetime.fromtimestamp(value // 1_000_000, tz=UTC).replace(microsecond=value % 1_000_000)


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    """``YYYY-MM-DD`` of a day number since the epoch (a page of items spans few days: cached)."""
    return date.fromordinal(_EPOCH_ORDINAL + days).isoformat()


def iso(value: int | str | None) -> str | None:
    """ISO-8601 UTC with millisecond precision and a Z, as JavaScript's Date.toISOString().

    Computed with integer arithmetic and a cached date: a page of 50 messages renders about 100
    of these, and ``datetime.strftime`` was a tenth of the request (issue 16)."""
    if value is None or value == "":
        return None
    seconds, micros = divmod(int(value), 1_000_000)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micros // 1000:03d}Z"


def rfc3339(value: int | str, digits: int = 6) -> str:
    """RFC 3339 UTC (always a four-digit year, unlike strftime's %Y before 1000) with ``digits``
    fraction digits: 6 (exact) for exports; the API renders with the faster :func:`iso`."""
    moment = from_us(value)
    fraction = f"{moment.microsecond:06d}"[:digits]
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{fraction}Z"
