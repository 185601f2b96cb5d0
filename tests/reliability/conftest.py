"""Fault tests reuse the search suite's fixtures (fake Pinecone/OpenAI behind the real SDKs, an empty
outbox per test, indexers with fast test settings, the SDK's retry waits recorded instead of slept)
and add fakes that misbehave on request."""

from collections.abc import Iterator
from typing import Any

import pytest

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
