"""Fixtures for migration tests: an ai-chatbot database in a Postgres schema of its own, and a
Redis prefix of its own per test (so imports, exports and repairs never see each other)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import psycopg
import pytest
from django.conf import settings
from django.test import override_settings
from psycopg import sql
from psycopg.types.json import Json

from tests.conftest import delete_keys

PG_URL = os.environ.get("MOOKTI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DDL = (Path(__file__).parent / "chatbot_schema.sql").read_text()
BASE = datetime(2025, 6, 1, 9, 30, 0, 123456)


# Sorts after every other id: the second account with alice's email (the first one read wins it).
LATE_ID = "ffffffff-ffff-4fff-bfff-ffffffffffff"


def uid(name: str) -> str:
    """A stable UUID per fixture name, so tests can talk about rows by name."""
    if name == "alice-again":
        return LATE_ID
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mookti-fixture:{name}"))


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes, microseconds=int(minutes * 7))


def bcrypt_hash(password: str, prefix: bytes) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, prefix=prefix)).decode()


@dataclass
class ChatbotDb:
    url: str
    schema: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.url, autocommit=True)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn

    def insert(self, table: str, *rows: dict[str, Any], check_fks: bool = True) -> None:
        """Insert rows (json values wrapped); ``check_fks=False`` lets orphans in, as a broken database has."""
        with self.connect() as conn:
            if not check_fks:
                conn.execute("SET session_replication_role = replica")
            for row in rows:
                columns = sql.SQL(", ").join(sql.Identifier(c) for c in row)
                values = [
                    Json(v) if isinstance(v, dict | list) or table in JSON_STRINGS.get(c, ()) else v
                    for c, v in row.items()
                ]
                query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table), columns, sql.SQL(", ").join(sql.Placeholder() * len(row))
                )
                conn.execute(query, values)
                self.rows.setdefault(table, []).append(row)

    def options(self, **kwargs: Any) -> Any:
        from storage.portability.migration.chatbot import Options

        return Options(database_url=self.url, schema=self.schema, progress=False, **kwargs)


# json columns that may hold a bare string (legacy Message.content)
JSON_STRINGS = {"content": ("Message",)}

PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-2"}


def fill(db: ChatbotDb) -> None:
    """Users, chats, messages of both versions, votes, document versions, suggestions, streams,
    plus rows that break the target's rules (each named for what is wrong with it)."""
    db.insert(
        "User",
        {"id": uid("alice"), "email": "Alice@Example.com", "password": bcrypt_hash(PASSWORDS["alice"], b"2a")},
        {"id": uid("bob"), "email": "bob@example.com", "password": bcrypt_hash(PASSWORDS["bob"], b"2b")},
        {"id": uid("guest"), "email": "guest-1717234567890", "password": bcrypt_hash("x", b"2b")},
        {"id": uid("carol"), "email": "carol@example.com", "password": None},
        {"id": uid("alice-again"), "email": "alice@example.com", "password": None},
        {"id": uid("braces"), "email": "bad{x}@example.com", "password": None},
    )
    db.insert(
        "Chat",
        {
            "id": uid("a1"),
            "createdAt": at(0),
            "userId": uid("alice"),
            "title": "Photosynthesis",
            "visibility": "private",
            "lastContext": Json({"inputTokens": 12}),
        },
        {"id": uid("a2"), "createdAt": at(10), "userId": uid("alice"), "title": "Shared", "visibility": "public"},
        {
            "id": uid("legacy"),
            "createdAt": at(-100),
            "userId": uid("alice"),
            "title": "Old times",
            "visibility": "private",
        },
        {"id": uid("b1"), "createdAt": at(5), "userId": uid("bob"), "title": "Bob's chat", "visibility": "private"},
        {"id": uid("both"), "createdAt": at(-50), "userId": uid("bob"), "title": "Converted", "visibility": "private"},
        {"id": uid("secret"), "createdAt": at(20), "userId": uid("alice"), "title": "Bad", "visibility": "secret"},
        {
            "id": uid("dup-owner"),
            "createdAt": at(21),
            "userId": uid("alice-again"),
            "title": "X",
            "visibility": "private",
        },
    )
    text = lambda s: [{"type": "text", "text": s}]  # noqa: E731
    db.insert(
        "Message_v2",
        {
            "id": uid("a1-m1"),
            "chatId": uid("a1"),
            "role": "user",
            "parts": text("What is photosynthesis?"),
            "attachments": [],
            "createdAt": at(1),
        },
        {
            "id": uid("a1-m2"),
            "chatId": uid("a1"),
            "role": "assistant",
            "parts": [{"type": "step-start"}, {"type": "reasoning", "text": "think"}, *text("Plants make sugar.")],
            "attachments": [],
            "createdAt": at(2),
        },
        {
            "id": uid("a1-m3"),
            "chatId": uid("a1"),
            "role": "user",
            "parts": text("And at night?"),
            "attachments": [{"name": "leaf.png", "url": "https://x/leaf.png", "contentType": "image/png"}],
            "createdAt": at(3),
        },
        {
            "id": uid("a2-m1"),
            "chatId": uid("a2"),
            "role": "user",
            "parts": text("public hello"),
            "attachments": [],
            "createdAt": at(11),
        },
        {
            "id": uid("b1-m1"),
            "chatId": uid("b1"),
            "role": "user",
            "parts": text("bob asks"),
            "attachments": [],
            "createdAt": at(6),
        },
        {
            "id": uid("b1-m2"),
            "chatId": uid("b1"),
            "role": "assistant",
            "parts": text("bob answered"),
            "attachments": [],
            "createdAt": at(7),
        },
        {
            "id": uid("both-m1"),
            "chatId": uid("both"),
            "role": "user",
            "parts": text("converted hi"),
            "attachments": [],
            "createdAt": at(-49),
        },
        {
            "id": uid("bad-role"),
            "chatId": uid("b1"),
            "role": "tool",
            "parts": text("?"),
            "attachments": [],
            "createdAt": at(8),
        },
        {
            "id": uid("bad-parts"),
            "chatId": uid("b1"),
            "role": "user",
            "parts": {"text": "not a list"},
            "attachments": [],
            "createdAt": at(9),
        },
        {
            "id": uid("in-bad-chat"),
            "chatId": uid("secret"),
            "role": "user",
            "parts": text("lost?"),
            "attachments": [],
            "createdAt": at(22),
        },
    )
    db.insert(
        "Message_v2",
        {
            "id": uid("orphan"),
            "chatId": uid("no-such-chat"),
            "role": "user",
            "parts": text("orphan"),
            "attachments": [],
            "createdAt": at(30),
        },
        check_fks=False,
    )
    db.insert(
        "Message",
        {
            "id": uid("legacy-u1"),
            "chatId": uid("legacy"),
            "role": "user",
            "content": "What's the weather?",
            "createdAt": at(-99),
        },
        {
            "id": uid("legacy-a1"),
            "chatId": uid("legacy"),
            "role": "assistant",
            "content": [
                {"type": "tool-call", "toolCallId": "call-1", "toolName": "getWeather", "args": {"city": "Pune"}}
            ],
            "createdAt": at(-98),
        },
        {
            "id": uid("legacy-t1"),
            "chatId": uid("legacy"),
            "role": "tool",
            "content": [
                {"type": "tool-result", "toolCallId": "call-1", "toolName": "getWeather", "result": {"celsius": 31}}
            ],
            "createdAt": at(-98),
        },
        {
            "id": uid("legacy-a2"),
            "chatId": uid("legacy"),
            "role": "assistant",
            "content": [{"type": "text", "text": "It is 31 degrees."}],
            "createdAt": at(-97),
        },
        {"id": uid("legacy-u2"), "chatId": uid("legacy"), "role": "user", "content": "Thanks", "createdAt": at(-96)},
        {"id": uid("both-old"), "chatId": uid("both"), "role": "user", "content": "converted hi", "createdAt": at(-49)},
    )
    db.insert(
        "Vote_v2",
        {"chatId": uid("a1"), "messageId": uid("a1-m2"), "isUpvoted": True},
        {"chatId": uid("b1"), "messageId": uid("b1-m2"), "isUpvoted": False},
        {"chatId": uid("secret"), "messageId": uid("in-bad-chat"), "isUpvoted": True},
    )
    db.insert(
        "Vote",
        {"chatId": uid("legacy"), "messageId": uid("legacy-a1"), "isUpvoted": True},
        {"chatId": uid("legacy"), "messageId": uid("legacy-a2"), "isUpvoted": False},
        {"chatId": uid("both"), "messageId": uid("both-old"), "isUpvoted": True},
    )
    db.insert(
        "Document",
        {
            "id": uid("d1"),
            "createdAt": at(40),
            "title": "Essay",
            "content": "draft one",
            "text": "text",
            "userId": uid("alice"),
        },
        {
            "id": uid("d1"),
            "createdAt": at(41),
            "title": "Essay (final)",
            "content": "draft two",
            "text": "text",
            "userId": uid("alice"),
        },
        {
            "id": uid("d2"),
            "createdAt": at(42),
            "title": "Numbers",
            "content": None,
            "text": "sheet",
            "userId": uid("bob"),
        },
        {
            "id": uid("d-bad-kind"),
            "createdAt": at(43),
            "title": "Movie",
            "content": "x",
            "text": "video",
            "userId": uid("bob"),
        },
        {
            "id": uid("d-dup-owner"),
            "createdAt": at(44),
            "title": "Y",
            "content": "y",
            "text": "code",
            "userId": uid("alice-again"),
        },
    )
    db.insert(
        "Suggestion",
        {
            "id": uid("s1"),
            "documentId": uid("d1"),
            "documentCreatedAt": at(40),
            "originalText": "draft",
            "suggestedText": "Draft",
            "description": "Capitalise",
            "isResolved": False,
            "userId": uid("alice"),
            "createdAt": at(40.5),
        },
        {
            "id": uid("s2"),
            "documentId": uid("d1"),
            "documentCreatedAt": at(41),
            "originalText": "two",
            "suggestedText": "2",
            "description": None,
            "isResolved": True,
            "userId": uid("alice"),
            "createdAt": at(41.5),
        },
        {
            "id": uid("s-bad-doc"),
            "documentId": uid("d-bad-kind"),
            "documentCreatedAt": at(43),
            "originalText": "x",
            "suggestedText": "y",
            "description": None,
            "isResolved": False,
            "userId": uid("bob"),
            "createdAt": at(43.5),
        },
    )
    db.insert(
        "Stream",
        {"id": uid("st1"), "chatId": uid("a1"), "createdAt": at(1.5)},
        {"id": uid("st2"), "chatId": uid("a1"), "createdAt": at(3.5)},
        {"id": uid("st-bad"), "chatId": uid("secret"), "createdAt": at(22.5)},
    )


@pytest.fixture
def chatbot_db() -> Iterator[ChatbotDb]:
    """A filled ai-chatbot database in a fresh schema, dropped afterwards."""
    schema = f"chatbot_test_{uuid.uuid4().hex[:12]}"
    db = ChatbotDb(PG_URL, schema)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(DDL.replace("SCHEMA", schema))
    try:
        fill(db)
        yield db
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (inside the run's prefix), emptied afterwards."""
    own = f"{settings.MOOKTI_REDIS_PREFIX}{uuid.uuid4().hex[:8]}:"
    with override_settings(MOOKTI_REDIS_PREFIX=own):
        try:
            yield own
        finally:
            delete_keys(own)


@pytest.fixture
def other_prefix(prefix: str) -> Iterator[str]:
    """A second empty prefix (for round trips), emptied afterwards; the test switches to it itself."""
    own = f"{prefix[:-1]}-other:"
    try:
        yield own
    finally:
        delete_keys(own)


def state() -> dict[str, Any]:
    """Every key of the current prefix with its value."""
    from tests.conftest import snapshot_keys

    return snapshot_keys()
