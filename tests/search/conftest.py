"""Fixtures for the search tests: fake Pinecone/OpenAI servers, the local model (loaded once), fresh index state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mookti import keys as mookti_keys
from mookti.backends import registry
from mookti.redis import get_redis
from storage.search import keys as search_keys
from storage.search import query as search_service
from storage.search.embeddings.local import SentenceTransformerEmbeddings
from storage.search.indexer import Indexer
from tests.search.fakes import FakeOpenAI, FakePinecone

DIMENSION = 64
# Fast loops for tests: no waiting for batches to fill, tiny backoffs.
FAST = {
    "BATCH_WAIT_MS": 0,
    "BLOCK_MS": 0,
    "RETRY_BASE_SECONDS": 0.01,
    "RETRY_MAX_SECONDS": 0.05,
    "OUTAGE_BASE_SECONDS": 0.01,
    "OUTAGE_MAX_SECONDS": 0.05,
    "MAX_ATTEMPTS": 3,
    "MAINTAIN_SECONDS": 3600,
}


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_pinecone() -> Iterator[FakePinecone]:
    server = FakePinecone(DIMENSION).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local_model() -> SentenceTransformerEmbeddings:
    """all-MiniLM-L6-v2, loaded once for the whole run (later instances reuse the process's model)."""
    embeddings = SentenceTransformerEmbeddings()
    embeddings.warm_up()
    return embeddings


@pytest.fixture(autouse=True)
def fresh_index_state() -> Iterator[None]:
    """Each test starts with an empty outbox (other tests' writes stay out) and no recorded index."""
    client = get_redis()
    stale = [
        mookti_keys.outbox(),
        search_keys.outbox_dead(),
        search_keys.outbox_attempts(),
        search_keys.vector_index_meta(),
    ]
    client.delete(*stale)
    search_service._checked.clear()
    registry.reset()
    yield
    client.delete(*stale)
    registry.reset()


def openai_settings(fake: FakeOpenAI, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "storage.search.embeddings.openai.OpenAIEmbeddings",
        "OPTIONS": {
            "api_key": "sk-test",
            "base_url": f"{fake.url}/v1",
            "dimensions": DIMENSION,
            "max_retries": 0,
            "timeout": 5,
            **options,
        },
    }


def pinecone_settings(fake: FakePinecone, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "storage.search.vectors.pinecone.PineconeVectorStore",
        "OPTIONS": {
            "api_key": "pc-test",
            "host": fake.url,
            "timeout": 5,
            **options,
        },
    }


@pytest.fixture(autouse=True)
def pinecone_retry_waits(monkeypatch) -> list[float]:
    """The waits the Pinecone SDK's own retry loop asks for, recorded instead of slept.

    The SDK retries 429/5xx itself (fixed policy, up to 60 s per wait) and offers these sleep
    functions as its test seam; requests and retries still go to the fake server for real.
    Its process-wide per-host retry budget is refilled so each test starts like a fresh process.
    """
    from pinecone._internal import http_client

    waits: list[float] = []
    monkeypatch.setattr(http_client, "_retry_sleep", waits.append)
    http_client.get_budget_registry()._reset()
    return waits


@pytest.fixture
def remote(settings, fake_openai: FakeOpenAI, fake_pinecone: FakePinecone) -> Iterator[dict[str, Any]]:
    """OpenAI embeddings and Pinecone, both through the real SDKs against the fake servers."""
    for server in (fake_openai, fake_pinecone):
        if not server.running:
            server.start()
        server.reset()
    settings.MOOKTI_EMBEDDINGS = openai_settings(fake_openai)
    settings.MOOKTI_VECTOR_STORE = pinecone_settings(fake_pinecone)
    yield {"openai": fake_openai, "pinecone": fake_pinecone}
    for server in (fake_openai, fake_pinecone):
        if not server.running:
            server.start()


@pytest.fixture
def local(settings, tmp_path, local_model: SentenceTransformerEmbeddings) -> dict[str, Any]:
    """The embedded defaults: the local model and LanceDB in a fresh folder."""
    settings.MOOKTI_EMBEDDINGS = {
        "BACKEND": "storage.search.embeddings.local.SentenceTransformerEmbeddings",
        "OPTIONS": {},
    }
    settings.MOOKTI_VECTOR_STORE = {
        "BACKEND": "storage.search.vectors.lancedb.LanceDBVectorStore",
        "OPTIONS": {"path": str(tmp_path / "lancedb")},
    }
    return {"path": tmp_path / "lancedb"}


@pytest.fixture
def make_indexer():
    def make(consumer: str | None = None, **options: Any) -> Indexer:
        return Indexer(consumer, options={**FAST, **options})

    return make


def new_chat(user: dict[str, Any], title: str, texts: list[str] | None = None, role: str = "user") -> dict[str, Any]:
    """A chat of ``user`` with messages posted through the API; returns {"id", "messages": [...]}."""
    api = user["api"]
    response = api.post("/api/storage/chat", {"title": title})
    assert response.status_code == 201, response.content
    chat = response.json()
    chat["messages"] = []
    if texts:
        batch = [{"chatId": chat["id"], "role": role, "parts": [{"type": "text", "text": t}]} for t in texts]
        response = api.post("/api/storage/message", {"messages": batch})
        assert response.status_code == 201, response.content
        chat["messages"] = response.json()
    return chat


def search_api(user: dict[str, Any], query: str, **body: Any) -> Any:
    return user["api"].post("/api/storage/search", {"query": query, **body})
