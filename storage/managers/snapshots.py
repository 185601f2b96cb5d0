"""Batched, read-only snapshots of chat data for derived indexes (semantic search, its checks).

The indexer reads the *current* state of many chats, messages and documents per batch, and a
search checks every hit against Redis: one pipeline per call here keeps that to a round trip or
two, and keeps storage's key names inside storage's managers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mookti.redis import get_redis, pipeline
from storage import keys
from storage.managers.chats import decode_chat
from storage.managers.documents import decode_version
from storage.managers.messages import decode_message


@dataclass
class ChatSnapshot:
    """A chat as it is now (None when gone) and its message ids, oldest first."""

    chat: dict[str, Any] | None
    message_ids: list[str]


@dataclass
class DocumentSnapshot:
    """A document's owner ("" when gone) and its latest version (None when it has none)."""

    owner: str
    latest: dict[str, Any] | None


def chats(chat_ids: Sequence[str]) -> dict[str, ChatSnapshot]:
    pipe = pipeline()
    for chat_id in chat_ids:
        pipe.hgetall(keys.chat(chat_id))
        pipe.zrange(keys.chat_messages(chat_id), 0, -1)
    replies = iter(pipe.execute())
    return {chat_id: ChatSnapshot(decode_chat(next(replies)), list(next(replies))) for chat_id in chat_ids}


def messages(pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
    """The messages named by (chatId, messageId), in order (None for a missing one)."""
    pipe = pipeline()
    for chat_id, message_id in pairs:
        pipe.hget(keys.chat_message_data(chat_id), message_id)
    return [decode_message(c, m, value) for (c, m), value in zip(pairs, pipe.execute(), strict=True)] if pairs else []


def documents(document_ids: Sequence[str]) -> dict[str, DocumentSnapshot]:
    """Owner and latest version of each document: two round trips."""
    pipe = pipeline()
    for document_id in document_ids:
        pipe.hget(keys.document(document_id), "userId")
        pipe.zrange(keys.document_versions(document_id), -1, -1)
    replies = iter(pipe.execute())
    heads = {document_id: (next(replies) or "", next(replies)) for document_id in document_ids}
    pipe = pipeline()
    latest = [(document_id, int(stamps[0])) for document_id, (_, stamps) in heads.items() if stamps]
    for document_id, created_at in latest:
        pipe.hgetall(keys.document_version(document_id, created_at))
    versions = dict(zip((d for d, _ in latest), map(decode_version, pipe.execute() if latest else []), strict=True))
    return {document: DocumentSnapshot(owner, versions.get(document)) for document, (owner, _) in heads.items()}


def owned_titles(
    user_id: str, chat_ids: Sequence[str], document_ids: Sequence[str], message_pairs: Sequence[tuple[str, str]]
) -> tuple[dict[str, str], dict[str, str], set[tuple[str, str]]]:
    """Titles of the chats and documents that exist and are ``user_id``'s, and which of the messages
    exist: one round trip (a search checks its hits with it)."""
    pipe = pipeline()
    for chat_id in chat_ids:
        pipe.hmget(keys.chat(chat_id), "userId", "title")
    for document_id in document_ids:
        pipe.hmget(keys.document(document_id), "userId", "title")
    for chat_id, message_id in message_pairs:
        pipe.hexists(keys.chat_message_data(chat_id), message_id)
    replies = pipe.execute()
    heads = dict(zip([("c", c) for c in chat_ids] + [("d", d) for d in document_ids], replies, strict=False))
    chat_titles = {c: heads[("c", c)][1] or "" for c in chat_ids if heads[("c", c)][0] == user_id}
    document_titles = {d: heads[("d", d)][1] or "" for d in document_ids if heads[("d", d)][0] == user_id}
    present = len(chat_ids) + len(document_ids)
    existing = {pair for pair, found in zip(message_pairs, replies[present:], strict=True) if found}
    return chat_titles, document_titles, existing


def user_chat_ids(user_id: str) -> list[str]:
    return get_redis().zrange(keys.user_chats(user_id), 0, -1)


def chat_message_ids(chat_id: str) -> list[str]:
    return get_redis().zrange(keys.chat_messages(chat_id), 0, -1)


def user_document_ids(user_id: str) -> list[str]:
    return get_redis().zrange(keys.user_documents(user_id), 0, -1)


def count_messages(user_ids: Iterable[str]) -> int:
    """Messages in all chats of these users: two pipelined passes."""
    pipe = pipeline()
    for user_id in user_ids:
        pipe.zrange(keys.user_chats(user_id), 0, -1)
    chat_lists = pipe.execute()
    pipe = pipeline()
    for chat_ids in chat_lists:
        for chat_id in chat_ids:
            pipe.zcard(keys.chat_messages(chat_id))
    return sum(pipe.execute())


def count_documents(user_ids: Iterable[str]) -> int:
    pipe = pipeline()
    for user_id in user_ids:
        pipe.zcard(keys.user_documents(user_id))
    return sum(pipe.execute())


def user_exists(user_id: str) -> bool:
    return bool(get_redis().exists(keys.user(user_id)))


def all_user_ids() -> list[str]:
    return get_redis().zrange(keys.users(), 0, -1)
