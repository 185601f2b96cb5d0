"""Fake Pinecone and OpenAI servers (tests/search/fakes.py) that misbehave on request, for fault tests.

A fault applies to requests on some paths until it is cleared:

- ``status``: answer with that HTTP status (429, 500, ...) and change nothing;
- ``slow``: wait ``delay`` seconds first (longer than the client's timeout: it gives up), then
  answer normally, as a slow real server does (the late write is applied);
- ``hold``: keep the request until :meth:`Faults.clear`, then answer 503 and change nothing
  (a request whose client was killed meanwhile never lands).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.search.fakes import FakeOpenAI, FakePinecone


@dataclass
class Fault:
    mode: str
    paths: tuple[str, ...]
    status: int = 503
    delay: float = 0.0
    released: threading.Event = field(default_factory=threading.Event)


class Faults:
    """The scripted fault of one fake server, and what it did."""

    def __init__(self) -> None:
        self.current: Fault | None = None
        self.hits = 0  # requests the fault answered
        self.held = threading.Semaphore(0)  # one release per request that started waiting
        self._lock = threading.Lock()

    def set(self, mode: str, *paths: str, status: int = 503, delay: float = 0.0) -> None:
        self.current = Fault(mode, paths, status, delay)

    def clear(self) -> None:
        """Back to normal; held requests are let go (and answer 503)."""
        fault, self.current = self.current, None
        if fault is not None:
            fault.released.set()

    def wait_held(self, timeout: float) -> bool:
        """True once a request is being held."""
        return self.held.acquire(timeout=timeout)

    def intercept(self, path: str) -> tuple[int, Any] | None:
        """The fault's answer for ``path`` (None: handle it normally, maybe after a delay)."""
        fault = self.current
        if fault is None or not path.startswith(fault.paths):
            return None
        with self._lock:
            self.hits += 1
        if fault.mode == "slow":
            time.sleep(fault.delay)
            return None
        if fault.mode == "hold":
            self.held.release()
            fault.released.wait(120)
        message = f"scripted {fault.mode} fault"
        return fault.status, {"error": {"code": fault.status, "message": message, "type": "server_error"}}


class FaultyMixin:
    """Put :class:`Faults` in front of a fake server's handler; answers to clients that left are dropped."""

    faults: Faults

    def handle(self, method, path, query, body, headers, size):
        answer = self.faults.intercept(path)
        if answer is not None:
            return answer
        return super().handle(method, path, query, body, headers, size)

    def _send(self, handler, status, payload, headers=None):
        with contextlib.suppress(OSError):  # the client timed out or was killed meanwhile
            super()._send(handler, status, payload, headers)


class FaultyPinecone(FaultyMixin, FakePinecone):
    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.faults = Faults()


class FaultyOpenAI(FaultyMixin, FakeOpenAI):
    def __init__(self) -> None:
        super().__init__()
        self.faults = Faults()
