"""Admin fixtures: staff and non-staff Django accounts, and a learner with real data in Redis."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from storage.managers import chats, documents, messages, votes


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
