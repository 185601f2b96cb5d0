"""Admin fixtures: staff and non-staff Django accounts, and a learner with real data in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from mookti import keys as mookti_keys
from mookti.redis import get_redis
from storage.managers import chats, documents, messages, votes
from storage.search import keys as search_keys


@pytest.fixture
def staff_client(db, django_user_model) -> Client:
    """A staff member who is not a superuser: staff status alone opens the Mookti pages."""
    user = django_user_model.objects.create_user("support", "support@example.com", "support-pass-123", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def learner_client(db, django_user_model) -> Client:
    """A logged-in Django account without staff status."""
    user = django_user_model.objects.create_user("learner", "learner@example.com", "learner-pass-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def learner(make_user) -> dict[str, Any]:
    """A user with a chat (text, reasoning, a tool call, a file, votes) and a document with two versions."""
    user = make_user(name="Lena Learner", user_type="basic")
    chat = chats.create(user["id"], title="Photosynthesis basics")
    saved = messages.save(
        user["id"],
        [
            {"chatId": chat["id"], "role": "user", "parts": [{"type": "text", "text": "How do plants make food?"}]},
            {
                "chatId": chat["id"],
                "role": "assistant",
                "parts": [
                    {"type": "step-start"},
                    {"type": "reasoning", "text": "Explain chlorophyll first."},
                    {
                        "type": "tool-getWeather",
                        "toolCallId": "call-1",
                        "state": "output-available",
                        "input": {"city": "Pune"},
                        "output": {"sunny": True},
                    },
                    {"type": "text", "text": "Plants use sunlight, water and carbon dioxide."},
                    {
                        "type": "file",
                        "mediaType": "image/png",
                        "filename": "leaf.png",
                        "url": "https://example.com/leaf.png",
                    },
                    {"type": "file", "mediaType": "text/html", "filename": "evil.html", "url": "javascript:alert(1)"},
                ],
            },
        ],
    )
    votes.vote(user["id"], chat["id"], saved[1]["id"], "up")
    document = documents.save(user["id"], document_id=None, title="Essay", kind="text", content="Plants are green.")
    documents.save(
        user["id"],
        document_id=document["id"],
        title="Essay v2",
        kind="text",
        content="Plants are green.\nThey love light.",
    )
    documents.save_suggestions(
        user["id"], document["id"], [{"originalText": "love", "suggestedText": "need", "description": "precise"}]
    )
    return {**user, "chat": chat, "messages": saved, "document": document}


# Fast indexer loops for tests: no waiting for batches to fill, no background upkeep.
FAST_INDEXER = {"BATCH_WAIT_MS": 0, "BLOCK_MS": 0, "MAINTAIN_SECONDS": 3600, "RETRY_BASE_SECONDS": 0.01}


def drain_indexer(timeout: float = 120.0) -> bool:
    """Run the outbox indexer in this process until every entry is handled."""
    from storage.search.indexer import Indexer

    return Indexer(options=FAST_INDEXER).drain(timeout=timeout)


@pytest.fixture
def search_backends(settings, tmp_path) -> Iterator[Path]:
    """The default backends (local model, LanceDB) on a fresh store, with an empty outbox.

    Other tests' writes fill the shared outbox; starting empty keeps a drain to this test's data.
    """
    from mookti.backends import registry
    from storage.search import query as search_service

    path = tmp_path / "lancedb"
    settings.MOOKTI_EMBEDDINGS = {
        "BACKEND": "storage.search.embeddings.local.SentenceTransformerEmbeddings",
        "OPTIONS": {},
    }
    settings.MOOKTI_VECTOR_STORE = {
        "BACKEND": "storage.search.vectors.lancedb.LanceDBVectorStore",
        "OPTIONS": {"path": str(path)},
    }
    index_state = [
        mookti_keys.outbox(),
        search_keys.outbox_dead(),
        search_keys.outbox_attempts(),
        search_keys.vector_index_meta(),
    ]
    get_redis().delete(*index_state)
    search_service._checked.clear()
    registry.reset()
    yield path
    get_redis().delete(*index_state)
    search_service._checked.clear()
    registry.reset()
