"""What the vector store should hold for some messages, chats, documents or a user: read from Redis now.

Outbox entries only name what changed. :func:`sync` reads the *current* state of each subject from
Redis (through the storage keys and the managers' decoders) and makes the store match it: an
existing message with text is upserted, a missing one deleted, a deleted chat's or document's
records removed, a deleted user's namespace dropped. So the outcome does not depend on the order
in which entries are handled, as long as two processes never sync the same user at once (the
indexer holds a per-user lease for that).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mookti.redis import pipeline
from storage import keys
from storage.managers.chats import decode_chat
from storage.managers.documents import decode_version
from storage.managers.messages import decode_message
from storage.search.chunking import chunk_text
from storage.search.embeddings import Embeddings
from storage.search.vectors import (
    VectorRecord,
    VectorStore,
    chat_prefix,
    clean_metadata,
    document_prefix,
    document_vector_id,
    message_vector_id,
    search_settings,
    snippet,
    user_namespace,
)

# Document kinds whose content is not prose (ai-chatbot stores images as base64).
UNINDEXED_DOCUMENT_KINDS = ("image",)


@dataclass(frozen=True)
class Subject:
    """Something whose records must match Redis: ("message", chatId, messageId), ("chat", chatId),
    ("document", documentId) or ("user",)."""

    kind: str
    parent: str = ""
    item: str = ""


@dataclass
class Changes:
    """What to do to one namespace."""

    drop: bool = False
    chats: set[str] = field(default_factory=set)
    documents: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    upserts: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (text, metadata)
    stale_prefixes: list[tuple[str, set[str]]] = field(default_factory=list)  # prefix, ids to keep

    def __bool__(self) -> bool:
        return bool(self.drop or self.chats or self.documents or self.deletes or self.upserts or self.stale_prefixes)


def epoch_seconds(microseconds: int) -> float:
    return round(microseconds / 1_000_000, 3)


def plan(user_id: str, subjects: Iterable[Subject]) -> Changes:
    """Read the subjects' current state (two pipelined round trips at most) and decide the changes."""
    subjects = list(dict.fromkeys(subjects))
    changes = Changes()
    messages = [s for s in subjects if s.kind == "message"]
    chats = list(dict.fromkeys([s.parent for s in subjects if s.kind in ("message", "chat")]))
    documents = list(dict.fromkeys(s.parent for s in subjects if s.kind == "document"))
    whole_user = any(s.kind == "user" for s in subjects)

    pipe = pipeline()
    for chat_id in chats:
        pipe.hgetall(keys.chat(chat_id))
        pipe.zrange(keys.chat_messages(chat_id), 0, -1)
    for subject in messages:
        pipe.hgetall(keys.chat_message(subject.parent, subject.item))
    for document_id in documents:
        pipe.hgetall(keys.document(document_id))
        pipe.zrange(keys.document_versions(document_id), -1, -1)
    if whole_user:
        pipe.exists(keys.user(user_id))
    replies = iter(pipe.execute())

    chat_state: dict[str, dict[str, Any] | None] = {}
    chat_members: dict[str, set[str]] = {}
    for chat_id in chats:
        chat = decode_chat(next(replies))
        chat_state[chat_id] = chat if chat and chat["userId"] == user_id else None
        chat_members[chat_id] = set(next(replies))
    for subject in messages:
        chat = chat_state[subject.parent]
        message = decode_message(next(replies))
        vector_id = message_vector_id(subject.parent, subject.item)
        text = (message or {}).get("content", "").strip()
        if chat is None or message is None or not text:
            changes.deletes.add(vector_id)
            continue
        metadata = {
            "userId": user_id,
            "chatId": subject.parent,
            "messageId": subject.item,
            "role": message["role"],
            "kind": "message",
            "createdAt": epoch_seconds(message["createdAt"]),
            "title": chat["title"],
            "snippet": snippet(text),
        }
        changes.upserts[vector_id] = (text, clean_metadata(metadata))
    for subject in subjects:
        if subject.kind != "chat":
            continue
        if chat_state[subject.parent] is None:
            changes.chats.add(subject.parent)
        else:  # the chat exists (again): drop only records of messages it no longer has
            keep = {message_vector_id(subject.parent, m) for m in chat_members[subject.parent]}
            changes.stale_prefixes.append((chat_prefix(subject.parent), keep))

    versions: dict[str, int] = {}
    for document_id in documents:
        meta, latest = next(replies), next(replies)
        if meta.get("userId") == user_id and latest:
            versions[document_id] = int(latest[0])
        else:
            changes.documents.add(document_id)
    if whole_user and not next(replies):
        changes.drop = True
    if versions:
        _plan_documents(user_id, versions, changes)
    return changes


def _plan_documents(user_id: str, versions: dict[str, int], changes: Changes) -> None:
    options = search_settings()
    size, overlap = options.get("CHUNK_CHARS", 1000), options.get("CHUNK_OVERLAP", 150)
    pipe = pipeline()
    for document_id, created_at in versions.items():
        pipe.hgetall(keys.document_version(document_id, created_at))
    for document_id, raw in zip(versions, pipe.execute(), strict=True):
        version = decode_version(raw)
        keep: set[str] = set()
        if version and version["kind"] not in UNINDEXED_DOCUMENT_KINDS:
            title = version["title"]
            for number, chunk in enumerate(chunk_text(version["content"] or "", size, overlap)):
                vector_id = document_vector_id(document_id, number)
                keep.add(vector_id)
                metadata = {
                    "userId": user_id,
                    "documentId": document_id,
                    "chunk": number,
                    "kind": "document",
                    "createdAt": epoch_seconds(version["createdAt"]),
                    "title": title,
                    "snippet": snippet(chunk),
                }
                changes.upserts[vector_id] = (f"{title}\n\n{chunk}" if title else chunk, clean_metadata(metadata))
        changes.stale_prefixes.append((document_prefix(document_id), keep))


def embed_changes(embeddings: Embeddings, changes_by_namespace: dict[str, Changes]) -> dict[str, list[VectorRecord]]:
    """Embed every text to upsert, across namespaces, in one call (the backend batches it)."""
    order = [(ns, vid) for ns, changes in changes_by_namespace.items() for vid in changes.upserts]
    texts = [changes_by_namespace[ns].upserts[vid][0] for ns, vid in order]
    vectors = embeddings.embed(texts) if texts else []
    records: dict[str, list[VectorRecord]] = defaultdict(list)
    for (ns, vid), vector in zip(order, vectors, strict=True):
        records[ns].append(VectorRecord(vid, vector, changes_by_namespace[ns].upserts[vid][1]))
    return records


def apply(store: VectorStore, namespace: str, changes: Changes, records: list[VectorRecord]) -> None:
    """Deletes first (namespace, chats, documents, stale records, ids), upserts last."""
    if changes.drop:
        store.delete_namespace(namespace)
    for chat_id in sorted(changes.chats):
        store.delete_chat(namespace, chat_id)
    for document_id in sorted(changes.documents):
        store.delete_document(namespace, document_id)
    stale = set(changes.deletes)
    for prefix, keep in changes.stale_prefixes:
        stale.update(vid for vid in store.list_ids(namespace, prefix) if vid not in keep)
    stale -= set(changes.upserts)
    if stale:
        store.delete(namespace, sorted(stale))
    if records:
        store.upsert(namespace, records)


def sync(
    embeddings: Embeddings,
    store: VectorStore,
    subjects_by_user: dict[str, list[Subject]],
    before_write: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Make the store match Redis for these subjects; returns counts of upserted and deleted records.

    ``before_write`` runs after embedding, right before the store is touched (the indexer checks
    it still holds its leases there).
    """
    changes = {user_namespace(user): plan(user, subjects) for user, subjects in subjects_by_user.items()}
    changes = {ns: c for ns, c in changes.items() if c}
    started = time.perf_counter()
    records = embed_changes(embeddings, changes)
    embed_seconds = time.perf_counter() - started
    if before_write is not None:
        before_write()
    for namespace, namespace_changes in changes.items():
        apply(store, namespace, namespace_changes, records.get(namespace, []))
    return {
        "upserted": sum(len(r) for r in records.values()),
        "deleted": sum(len(c.deletes - set(c.upserts)) + len(c.chats) + len(c.documents) for c in changes.values()),
        "embed_seconds": embed_seconds,
    }


def subjects_of_entry(fields: dict[str, str]) -> list[Subject]:
    """The subjects an outbox entry names (ValueError when the entry is malformed)."""
    from mookti.ids import check_id

    op, kind = fields.get("op", ""), fields.get("kind", "")
    check_id(fields.get("userId"), "userId")
    if op == "delete_user":
        return [Subject("user")]
    if op == "delete_chat":
        return [Subject("chat", check_id(fields.get("chatId"), "chatId"))]
    if op == "delete_document" or (op in ("upsert", "delete") and kind == "document"):
        return [Subject("document", check_id(fields.get("documentId"), "documentId"))]
    if op in ("upsert", "delete") and kind == "message":
        chat_id = check_id(fields.get("chatId"), "chatId")
        ids = [i for i in fields.get("messageIds", "").split(",") if i] or [fields.get("messageId")]
        return [Subject("message", chat_id, check_id(i, "messageId")) for i in ids]
    raise ValueError(f"Unknown outbox entry: op={op!r} kind={kind!r}.")


def user_subjects(user_id: str) -> Iterable[list[Subject]]:
    """Every message and document of a user as subjects, a chat (or document list) at a time."""
    from mookti.redis import get_redis

    client = get_redis()
    for chat_id in client.zrange(keys.user_chats(user_id), 0, -1):
        message_ids = client.zrange(keys.chat_messages(chat_id), 0, -1)
        yield [Subject("chat", chat_id)] + [Subject("message", chat_id, m) for m in message_ids]
    documents = client.zrange(keys.user_documents(user_id), 0, -1)
    if documents:
        yield [Subject("document", d) for d in documents]
