"""Where a message lives, by its id alone: a field of ``message-chat-ids:{bucket}``, message id ->
its chat and owner (:class:`storage.entities.MessageLookup`).

The field is the id in compact form (:func:`storage.entities.compact_id`: a UUID in 20 characters
instead of 36). Lookups written before (``message-chats:{bucket}`` fields, ``message-chat:{id}``
STRINGs) are not read: ``manage.py repair --fix`` writes them anew from the messages.
"""

from __future__ import annotations

from typing import Any

from mookti.redis import Write
from storage import keys
from storage.entities import MessageLookup, compact_id


def queue_read(pipe: Any, message_id: str) -> None:
    """Queue the read :func:`parse` takes."""
    pipe.hget(keys.message_lookups(message_id), compact_id(message_id))


def parse(value: str | None) -> MessageLookup | None:
    """The lookup from :func:`queue_read`'s reply; None when the id is free."""
    return MessageLookup.decode(value)


def stage_set(write: Write, message_id: str, chat_id: str, owner_id: str) -> None:
    value = MessageLookup(chat_id, owner_id).encode()
    write.step(lambda p: p.hset(keys.message_lookups(message_id), compact_id(message_id), value))


def stage_delete(write: Write, message_ids: list[str]) -> None:
    """Unindex messages: their bucket fields, one step per bucket (each one slot)."""
    by_bucket: dict[str, list[str]] = {}
    for message_id in message_ids:
        by_bucket.setdefault(keys.message_lookups(message_id), []).append(compact_id(message_id))
    for bucket, fields in by_bucket.items():
        write.step(lambda p, b=bucket, f=fields: p.hdel(b, *f))
