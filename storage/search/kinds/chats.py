"""The kinds of chat data: messages (grouped by chat) and documents. Read through storage's managers.

Messages are embedded with their chat's title in front (and, for an assistant answer, the start
of the user turn it replies to), so "the stocks chat" and a reply that never names its topic are
found; a title change re-embeds the chat's messages. Long messages are cut into overlapping chunks
like documents: record ``msg:{chatId}#{messageId}`` is the first chunk, ``…#{messageId}:{n}`` the
others; how many a message has is kept in search's own key (so an edit or a delete removes the
chunks it no longer has without listing the store). Documents: their latest version, chunked,
``doc:{documentId}#{chunk}``; images are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mookti.ids import check_id
from storage.managers import snapshots
from storage.search import chunk_counts
from storage.search.chunking import chunk_text
from storage.search.kinds import Changes, IndexableKind, Subject, Visible
from storage.search.vectors import (
    chat_prefix,
    clean_metadata,
    document_prefix,
    document_vector_id,
    message_chunk_id,
    search_settings,
    snippet,
)

# Document kinds whose content is not prose (ai-chatbot stores images as base64).
UNINDEXED_DOCUMENT_KINDS = ("image",)
# Characters of the user turn put in front of the answer that replies to it.
USER_TURN_CHARS = 200
MAX_TITLE_PREFIX = 120
MIN_CHUNK_CHARS = 400


def epoch_seconds(microseconds: int) -> float:
    return round(microseconds / 1_000_000, 3)


def chunk_options() -> tuple[int, int]:
    options = search_settings()
    return options.get("CHUNK_CHARS", 1000), options.get("CHUNK_OVERLAP", 150)


class MessageKind(IndexableKind):
    name = "message"
    group = "chat"
    subjects = ("message", "chat")
    items = ("message",)

    def subjects_of_entry(self, fields: dict[str, str]) -> list[Subject] | None:
        op, kind = fields.get("op", ""), fields.get("kind", "")
        if op == "delete_chat":
            return [Subject("chat", check_id(fields.get("chatId"), "chatId"))]
        if op == "upsert" and kind == "chat":  # the title changed: every message again
            return [Subject("chat", check_id(fields.get("chatId"), "chatId"), "all")]
        if op in ("upsert", "delete") and kind == "message":
            chat_id = check_id(fields.get("chatId"), "chatId")
            ids = [i for i in fields.get("messageIds", "").split(",") if i] or [fields.get("messageId")]
            return [Subject("message", chat_id, check_id(i, "messageId")) for i in ids]
        return None

    def user_subjects(self, user_id: str) -> Iterable[list[Subject]]:
        for chat_id in snapshots.user_chat_ids(user_id):
            message_ids = snapshots.chat_message_ids(chat_id)
            yield [Subject("chat", chat_id)] + [Subject("message", chat_id, m) for m in message_ids]

    def count(self, user_ids: Sequence[str]) -> int:
        return snapshots.count_messages(user_ids)

    def plan(self, user_id: str, subjects: Sequence[Subject], changes: Changes) -> None:
        chat_ids = list(dict.fromkeys(s.parent for s in subjects))
        chats = snapshots.chats(chat_ids)
        for snapshot in chats.values():
            if snapshot.chat is None or snapshot.chat["userId"] != user_id:
                snapshot.chat = None
        wanted = list(dict.fromkeys((s.parent, s.item) for s in subjects if s.kind == "message"))
        for subject in subjects:
            if subject.kind == "chat" and subject.item == "all" and chats[subject.parent].chat is not None:
                wanted.extend((subject.parent, m) for m in chats[subject.parent].message_ids)
        wanted = list(dict.fromkeys(wanted))
        turns = self._previous_turns(wanted, chats)
        found = snapshots.messages(wanted + [pair for pair in turns.values() if pair not in wanted])
        by_pair = dict(zip(wanted + [p for p in turns.values() if p not in wanted], found, strict=True))
        previous = chunk_counts.get(user_id, wanted)
        counts: dict[tuple[str, str], int] = {}
        size, overlap = chunk_options()
        for pair in wanted:
            chat = chats[pair[0]].chat
            message = by_pair[pair]
            text = (message or {}).get("content", "").strip()
            parts = self._texts(chat, message, by_pair.get(turns.get(pair, ("", ""))), size, overlap) if text else []
            if chat is None or message is None or not parts:
                parts = []
            for number, (embedded, chunk) in enumerate(parts):
                metadata = {
                    "userId": user_id,
                    "chatId": pair[0],
                    "messageId": pair[1],
                    "chunk": number if len(parts) > 1 else None,
                    "role": message["role"],  # type: ignore[index]
                    "kind": "message",
                    "createdAt": epoch_seconds(message["createdAt"]),  # type: ignore[index]
                    "title": chat["title"],  # type: ignore[index]
                    "snippet": snippet(chunk),
                }
                changes.upserts[message_chunk_id(*pair, number)] = (embedded, clean_metadata(metadata))
            for number in range(len(parts), max(1, previous.get(pair, 1))):
                changes.deletes.add(message_chunk_id(*pair, number))
            counts[pair] = len(parts)
        changes.after.append(lambda: chunk_counts.put(user_id, counts))
        for subject in subjects:
            if subject.kind != "chat":
                continue
            snapshot = chats[subject.parent]
            if snapshot.chat is None:
                changes.prefixes.add(chat_prefix(subject.parent))
                changes.after.append(lambda c=subject.parent: chunk_counts.forget_chat(user_id, c))
            elif subject.item != "all":  # the chat exists (again): drop records of messages it no longer has
                keep = {vid for vid in changes.upserts if vid.startswith(chat_prefix(subject.parent))}
                keep |= {message_chunk_id(subject.parent, m, 0) for m in snapshot.message_ids}
                changes.stale_prefixes.append((chat_prefix(subject.parent), keep))

    @staticmethod
    def _previous_turns(
        wanted: list[tuple[str, str]], chats: dict[str, snapshots.ChatSnapshot]
    ) -> dict[tuple[str, str], tuple[str, str]]:
        """For each message, the one before it in its chat (an answer's question), when there is one."""
        turns = {}
        positions = {c: {m: i for i, m in enumerate(s.message_ids)} for c, s in chats.items()}
        for chat_id, message_id in wanted:
            index = positions.get(chat_id, {}).get(message_id)
            if index:
                turns[(chat_id, message_id)] = (chat_id, chats[chat_id].message_ids[index - 1])
        return turns

    @staticmethod
    def _texts(
        chat: dict[str, Any] | None,
        message: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        size: int,
        overlap: int,
    ) -> list[tuple[str, str]]:
        """(embedded text, chunk) per chunk: the title (and the user turn answered) in front."""
        if chat is None or message is None:
            return []
        title = " ".join((chat.get("title") or "").split())[:MAX_TITLE_PREFIX]
        prefix = f"{title}\n\n" if title else ""
        if message["role"] == "assistant" and previous and previous.get("role") == "user":
            turn = snippet(previous.get("content") or "", USER_TURN_CHARS)
            prefix += f"{turn}\n\n" if turn else ""
        chunks = chunk_text(message["content"], max(MIN_CHUNK_CHARS, size - len(prefix)), overlap)
        return [(prefix + chunk, chunk) for chunk in chunks]

    def visible(self, user_id: str, matches: Sequence[Any]) -> dict[str, Visible]:
        chat_ids = list(dict.fromkeys(m.metadata.get("chatId", "") for m in matches))
        pairs = list(dict.fromkeys((m.metadata.get("chatId", ""), m.metadata.get("messageId", "")) for m in matches))
        titles, _, existing = snapshots.owned_titles(user_id, chat_ids, [], pairs)
        return {
            m.id: Visible(m.metadata["chatId"], titles[m.metadata["chatId"]])
            for m in matches
            if m.metadata.get("chatId") in titles
            and (m.metadata.get("chatId"), m.metadata.get("messageId")) in existing
        }


class DocumentKind(IndexableKind):
    name = "document"
    group = "document"
    subjects = ("document",)
    items = ("document",)

    def subjects_of_entry(self, fields: dict[str, str]) -> list[Subject] | None:
        op, kind = fields.get("op", ""), fields.get("kind", "")
        if op == "delete_document" or (op in ("upsert", "delete") and kind == "document"):
            return [Subject("document", check_id(fields.get("documentId"), "documentId"))]
        return None

    def user_subjects(self, user_id: str) -> Iterable[list[Subject]]:
        documents = snapshots.user_document_ids(user_id)
        if documents:
            yield [Subject("document", d) for d in documents]

    def count(self, user_ids: Sequence[str]) -> int:
        return snapshots.count_documents(user_ids)

    def plan(self, user_id: str, subjects: Sequence[Subject], changes: Changes) -> None:
        size, overlap = chunk_options()
        document_ids = list(dict.fromkeys(s.parent for s in subjects))
        for document_id, snapshot in snapshots.documents(document_ids).items():
            if snapshot.owner != user_id or snapshot.latest is None:
                changes.prefixes.add(document_prefix(document_id))
                continue
            version = snapshot.latest
            keep: set[str] = set()
            if version["kind"] not in UNINDEXED_DOCUMENT_KINDS:
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

    def visible(self, user_id: str, matches: Sequence[Any]) -> dict[str, Visible]:
        document_ids = list(dict.fromkeys(m.metadata.get("documentId", "") for m in matches))
        _, titles, _ = snapshots.owned_titles(user_id, [], document_ids, [])
        return {
            m.id: Visible(m.metadata["documentId"], titles[m.metadata["documentId"]])
            for m in matches
            if m.metadata.get("documentId") in titles
        }
