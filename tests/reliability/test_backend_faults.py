"""Pinecone or OpenAI answering 429, 500 or too slowly for a while: the indexer pauses, then indexes everything.

tests/search covers the SDKs' own retries of a single 429/5xx and servers that are down
(connection refused); here a fault lasts through several of the indexer's attempts.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from mookti.redis import get_redis
from storage.search import keys as search_keys
from storage.search.indexer import index_metrics
from storage.search.vectors import user_namespace
from tests.search.conftest import new_chat, openai_settings, pinecone_settings

TIMEOUT = 0.3  # the SDKs' request timeout here
SLOW = TIMEOUT + 0.4  # a slow answer comes after the client gave up
PATHS = {"pinecone": "/vectors/", "openai": "/v1/embeddings"}
CASES = [
    ("pinecone", "status", 429),
    ("pinecone", "status", 500),
    ("pinecone", "slow", 0),
    ("openai", "status", 429),
    ("openai", "status", 500),
    ("openai", "slow", 0),
]


@pytest.fixture
def faulty(settings, faulty_servers) -> dict[str, Any]:
    """OpenAI and Pinecone through the real SDKs (in this process), short timeouts."""
    settings.MOOKTI_EMBEDDINGS = openai_settings(faulty_servers["openai"], timeout=TIMEOUT)
    settings.MOOKTI_VECTOR_STORE = pinecone_settings(faulty_servers["pinecone"], timeout=TIMEOUT)
    return faulty_servers


def attempt_until(indexer, outages: int, timeout: float = 30.0) -> None:
    """Let the indexer try (and back off) until it has hit ``outages`` outages."""
    deadline = time.monotonic() + timeout
    while indexer.stats["outages"] < outages:
        assert time.monotonic() < deadline, f"only {indexer.stats['outages']} outages"
        if not indexer.run_once(block_ms=0):
            time.sleep(0.01)


@pytest.mark.parametrize(("server", "mode", "status"), CASES, ids=[f"{s}-{m}{c or ''}" for s, m, c in CASES])
def test_a_faulty_backend_pauses_the_indexer_then_everything_is_indexed(
    faulty, make_user, make_indexer, server, mode, status
):
    pinecone, fake = faulty["pinecone"], faulty[server]
    user = make_user(user_type="pro")
    namespace = user_namespace(user["id"])
    indexer = make_indexer()
    warm_up = new_chat(user, "Warm-up", ["before the fault"])
    assert indexer.drain()

    fake.faults.set(mode, PATHS[server], status=status, delay=SLOW)
    during = new_chat(user, "During", [f"fact {i} about volcanoes" for i in range(4)])
    during["messages"] += new_chat(user, "Later", ["one more about lava"])["messages"]
    attempt_until(indexer, outages=3)
    metrics = index_metrics()
    assert metrics["pending"] + metrics["lag"] >= 2 and metrics["dead"] == 0
    assert get_redis().hlen(search_keys.outbox_attempts()) == 0  # an outage is not held against the entries
    assert fake.faults.hits >= 3

    fake.faults.clear()
    assert indexer.drain()
    expected = {f"msg:{m['chatId']}#{m['id']}": m["content"] for m in warm_up["messages"] + during["messages"]}
    stored = {vector_id: metadata["snippet"] for vector_id, (_, metadata) in pinecone.vectors(namespace).items()}
    assert stored == expected
    assert index_metrics() == {**index_metrics(), "lag": 0, "pending": 0, "dead": 0}
    if (server, mode) != ("pinecone", "slow"):  # a slow upsert lands late, after its retry: twice
        assert all(pinecone.upserts[f"{namespace}/{vector_id}"] == 1 for vector_id in expected)


def test_a_batch_that_embeds_longer_than_its_lease_is_indexed_once(faulty, settings, make_user, make_indexer):
    """The indexer renews its leases while a slow model embeds: the batch is written, not redone forever."""
    pinecone, openai = faulty["pinecone"], faulty["openai"]
    settings.MOOKTI_EMBEDDINGS = openai_settings(openai, timeout=5)  # slow, not timed out
    user = make_user(user_type="pro")
    namespace = user_namespace(user["id"])
    indexer = make_indexer(LEASE_MS=300)
    openai.faults.set("slow", PATHS["openai"], delay=1.0)  # every embedding call outlasts the lease 3x
    chat = new_chat(user, "Slow model", ["a fact about glaciers", "another about moraines"])
    assert indexer.drain(timeout=20)
    assert indexer.stats["outages"] == 0
    expected = {f"msg:{m['chatId']}#{m['id']}" for m in chat["messages"]}
    assert set(pinecone.vectors(namespace)) == expected
    assert all(pinecone.upserts[f"{namespace}/{vector_id}"] == 1 for vector_id in expected)
