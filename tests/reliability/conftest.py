"""Fault tests reuse the search suite's fixtures (fake Pinecone/OpenAI behind the real SDKs, an empty
outbox per test, indexers with fast test settings, the SDK's retry waits recorded instead of slept)
and add fakes that misbehave on request."""

import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from mookti import localredis
from mookti.redis import close_clients
from tests.reliability.faults import FaultyOpenAI, FaultyPinecone
from tests.search.conftest import (  # noqa: F401 - fixtures
    DIMENSION,
    fake_openai,
    fake_pinecone,
    fresh_index_state,
    make_indexer,
    pinecone_retry_waits,
    remote,
)


@pytest.fixture(scope="module")
def _faulty_servers() -> Iterator[dict[str, Any]]:
    started = {"openai": FaultyOpenAI().start(), "pinecone": FaultyPinecone(DIMENSION).start()}
    yield started
    for server in started.values():
        server.faults.clear()
        server.stop()


@pytest.fixture
def faulty_servers(_faulty_servers) -> Iterator[dict[str, Any]]:
    """Fake OpenAI and Pinecone servers with :class:`~tests.reliability.faults.Faults`, reset, no fault yet."""
    for server in _faulty_servers.values():
        server.faults.clear()
        server.reset()
    yield _faulty_servers
    for server in _faulty_servers.values():
        server.faults.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[dict]:
    """A standalone redis-server of this test's own (AOF, noeviction), restartable (also in the cluster pass).

    ``process`` may be replaced by the test (a restart); whatever runs at the end is stopped.
    """
    url = f"redis://127.0.0.1:{free_port()}/0"
    server = {"url": url, "dir": tmp_path, "process": localredis.start(url, tmp_path)}
    try:
        with override_settings(REDIS_URL=url, REDIS_CLUSTER=False):
            close_clients()
            yield server
    finally:
        close_clients()
        server["process"].send_signal(signal.SIGCONT)  # a frozen server must be able to stop
        localredis.stop(server["process"])
