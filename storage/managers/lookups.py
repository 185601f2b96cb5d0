"""Where a message lives, by its id alone: ``message-chats:{bucket}`` hash fields.

Lookups written before issue 13 are ``message-chat:{id}`` STRINGs; reads consult both (one
round trip), writes go to the bucket, deletes remove both, and ``manage.py repair --fix`` moves
the old ones into the buckets.
"""

from __future__ import annotations

from typing import Any

from mookti.redis import Write
from storage import keys
from storage.entities import MessageLookup


def queue_read(pipe: Any, message_id: str) -> None:
    """Queue the two reads :func:`parse` takes (the bucket's field, the old STRING)."""
    pipe.hget(keys.message_lookups(message_id), message_id)
    pipe.get(keys.message_chat(message_id))


def parse(current: str | None, old: str | None) -> MessageLookup | None:
    """The lookup from :func:`queue_read`'s two replies; None when the id is free."""
    return MessageLookup.decode(current or old)


def stage_set(write: Write, message_id: str, chat_id: str, owner_id: str) -> None:
    value = MessageLookup(chat_id, owner_id).encode()
    write.step(lambda p: p.hset(keys.message_lookups(message_id), message_id, value))


def stage_delete(write: Write, message_ids: list[str]) -> None:
    """Unindex messages: their bucket fields (one step per bucket, each one slot) and any old STRING."""
    by_bucket: dict[str, list[str]] = {}
    for message_id in message_ids:
        by_bucket.setdefault(keys.message_lookups(message_id), []).append(message_id)
    for bucket, ids in by_bucket.items():
        write.step(lambda p, b=bucket, i=ids: p.hdel(b, *i))
    for message_id in message_ids:
        write.step(lambda p, m=message_id: p.delete(keys.message_chat(m)))
