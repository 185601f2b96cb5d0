"""Every Redis key name of the storage app, and nothing else builds them.

Braces are Redis Cluster hash tags: an aggregate (a user, a chat, a document) and its
indexes share one slot, so writes inside an aggregate are one MULTI/EXEC or Lua call.
Ids are validated (:mod:`mookti.ids`) before they reach these functions.
"""

from __future__ import annotations

import zlib

from mookti.redis import key


# --- users -------------------------------------------------------------------------------------
def user(user_id: str) -> str:
    return key(f"user:{{{user_id}}}")


def user_email(email: str) -> str:
    """STRING email -> user id, claimed with SET NX."""
    return key(f"user-email:{{{email}}}")


def users() -> str:
    """ZSET of every user id by createdAt (admin listing)."""
    return key("users")


def users_by_type(user_type: str) -> str:
    return key(f"users:type:{user_type}")


def user_chats(user_id: str) -> str:
    """ZSET chat ids by createdAt (ai-chatbot's history order)."""
    return key(f"user:{{{user_id}}}:chats")


def user_chats_by_activity(user_id: str) -> str:
    """ZSET chat ids by lastMessageAt."""
    return key(f"user:{{{user_id}}}:chats-by-activity")


def user_message_times(user_id: str) -> str:
    """ZSET ``chatId/messageId`` of the user's own (role user) messages by createdAt: rate limits."""
    return key(f"user:{{{user_id}}}:message-times")


def user_documents(user_id: str) -> str:
    """ZSET document ids by the time of their first version."""
    return key(f"user:{{{user_id}}}:documents")


def user_tokens(user_id: str) -> str:
    """ZSET token digests by expiry, so tokens can be listed and revoked with the user."""
    return key(f"user:{{{user_id}}}:tokens")


def token(digest: str) -> str:
    """HASH userId, createdAt, expiresAt for a hashed API token (EXPIRE = its TTL)."""
    return key(f"token:{{{digest}}}")


# --- chats and messages ------------------------------------------------------------------------
def chat(chat_id: str) -> str:
    return key(f"chat:{{{chat_id}}}")


def chat_messages(chat_id: str) -> str:
    """ZSET message ids by createdAt (microseconds); equal times fall back to id order."""
    return key(f"chat:{{{chat_id}}}:messages")


def chat_message_data(chat_id: str) -> str:
    """HASH message id -> the message (:meth:`storage.entities.Message.value`): every message of the
    chat in one key (a key per message cost about 150 bytes before any data)."""
    return key(f"chat:{{{chat_id}}}:message-data")


def old_chat_message(chat_id: str, message_id: str) -> str:
    """HASH: a message as stored before ``chat_message_data`` (``repair --fix`` moves it there)."""
    return key(f"chat:{{{chat_id}}}:message:{message_id}")


def chat_votes(chat_id: str) -> str:
    """HASH messageId -> up/down."""
    return key(f"chat:{{{chat_id}}}:votes")


def chat_streams(chat_id: str) -> str:
    """ZSET resumable-stream ids by createdAt."""
    return key(f"chat:{{{chat_id}}}:streams")


# Message lookups are spread over this many hashes, so each stays small enough for Redis's compact
# listpack encoding (docs/redis-keys.md says up to what scale). Changing it moves every lookup:
# `repair --fix` does.
LOOKUP_BUCKETS = 256


def message_lookups(message_id: str) -> str:
    """HASH message id -> its chat id (both compact: :func:`storage.entities.compact_id`), for
    getMessageById and unique message ids; the bucket is the id's CRC-32 modulo ``LOOKUP_BUCKETS``,
    a hash tag of its own (a lookup write is one step on one slot)."""
    return message_lookup_bucket(f"{zlib.crc32(message_id.encode()) % LOOKUP_BUCKETS:02x}")


def message_lookup_bucket(bucket: str) -> str:
    """A bucket of :func:`message_lookups` by its name (two hex digits), for repair's scan."""
    return key(f"message-chat-ids:{{{bucket}}}")


def old_message_lookup_bucket(bucket: str) -> str:
    """HASH message id -> ``chatId/ownerId`` (or both UUIDs in Base85): the lookups as written
    before ``message_lookups`` (``repair --fix`` writes those anew and removes these)."""
    return key(f"message-chats:{{{bucket}}}")


def old_message_chat(message_id: str) -> str:
    """STRING ``chatId/ownerId``: a message's lookup as written before issue 13 (``repair --fix``
    removes it)."""
    return key(f"message-chat:{{{message_id}}}")


# --- documents ---------------------------------------------------------------------------------
def document(document_id: str) -> str:
    """HASH id, userId, createdAt of the first version, latest version's time and title."""
    return key(f"document:{{{document_id}}}")


def document_versions(document_id: str) -> str:
    """ZSET version timestamps (member = score = createdAt microseconds)."""
    return key(f"document:{{{document_id}}}:versions")


def document_version(document_id: str, created_at: int | str) -> str:
    return key(f"document:{{{document_id}}}:version:{created_at}")


def document_save_guard(document_id: str, token: str) -> str:
    """STRING: the version time an ``Idempotency-Key`` request saved (PX: the idempotency TTL), so
    its replay saves nothing (checked inside the save's Lua step)."""
    return key(f"document:{{{document_id}}}:save:{token}")


def document_suggestions(document_id: str) -> str:
    """ZSET suggestion ids by the createdAt of the version they belong to."""
    return key(f"document:{{{document_id}}}:suggestions")


def document_suggestion(document_id: str, suggestion_id: str) -> str:
    return key(f"document:{{{document_id}}}:suggestion:{suggestion_id}")


# --- stream buffers (resumable AI responses) and conditional-request revisions ------------------
def stream_chat(stream_id: str) -> str:
    """STRING stream id -> ``chatId/ownerId`` (a stream is addressed by its id alone); EX."""
    return key(f"stream-chat:{{{stream_id}}}")


def chat_stream(chat_id: str, stream_id: str) -> str:
    """STREAM of one response's chunks: entry id ``0-<position+1>``; a last entry marks the end."""
    return key(f"chat:{{{chat_id}}}:stream:{stream_id}")


def chat_stream_meta(chat_id: str, stream_id: str) -> str:
    """HASH userId, status, seq (next batch), count, bytes, createdAt, lastActivityAt, endedAt."""
    return key(f"chat:{{{chat_id}}}:stream:{stream_id}:meta")


def chat_active_stream(chat_id: str) -> str:
    """STRING the id of the chat's most recent (active) stream."""
    return key(f"chat:{{{chat_id}}}:active-stream")


def chat_rev(chat_id: str) -> str:
    """HASH revision counters of a chat: ``chat`` (the chat itself), ``messages`` (its message list)."""
    return key(f"chat:{{{chat_id}}}:rev")


def user_rev(user_id: str) -> str:
    """HASH revision counters of a user: ``profile``, ``chats`` (the chat lists)."""
    return key(f"user:{{{user_id}}}:rev")


def document_rev(document_id: str) -> str:
    """HASH revision counter ``document`` (versions and their content)."""
    return key(f"document:{{{document_id}}}:rev")
