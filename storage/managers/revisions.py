"""Revision counters behind the API's strong ETags (conditional GETs).

Every write that changes what a GET shows bumps a counter in the same MULTI/EXEC
(:func:`touch_chat`, :func:`touch_user`, :func:`touch_document`: one line in the write). A GET
reads the counter in the round trip it already makes, so a matching ``If-None-Match`` is answered
304 before the page's entities are read or serialized. A counter is set to
``max(old + 1, now in microseconds)``: it never repeats, even for an aggregate deleted and
created again under the same id. An aggregate that was never bumped (data from before the
counters, or imported) has no counter; its ETag is then a digest of the body.

Counters: ``chat:{cid}:rev`` (``chat``: the chat itself, ``messages``: its message list),
``user:{uid}:rev`` (``profile``, ``chats``: the chat lists), ``document:{did}:rev`` (``document``).
Any new write path that changes one of these must touch it too.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mookti.ids import now_us
from mookti.redis import Write, register_script
from storage import keys

# KEYS[1] the counters HASH; ARGV[1] now (us), ARGV[2..] fields. Each field to max(old + 1, now).
BUMP = register_script(
    """
local now = tonumber(ARGV[1])
for i = 2, #ARGV do
  local value = math.max(tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') + 1, now)
  redis.call('HSET', KEYS[1], ARGV[i], string.format('%.0f', value))
end
return 1
"""
)

SCOPES = {"chat": keys.chat_rev, "user": keys.user_rev, "document": keys.document_rev}


def _touch(write: Write, key: str, fields: tuple[str, ...]) -> None:
    write.step(lambda p: BUMP(keys=[key], args=[now_us(), *fields], client=p))


def touch_chat(write: Write, chat_id: str, *fields: str) -> None:
    """Bump the chat's ``chat`` and/or ``messages`` counter within ``write``."""
    _touch(write, keys.chat_rev(chat_id), fields)


def touch_user(write: Write, user_id: str, *fields: str) -> None:
    """Bump the user's ``profile`` and/or ``chats`` counter within ``write``."""
    _touch(write, keys.user_rev(user_id), fields)


def touch_document(write: Write, document_id: str) -> None:
    _touch(write, keys.document_rev(document_id), ("document",))


class NotModified(Exception):
    """The client's copy is current: answer 304 (raised before the entities are read)."""

    def __init__(self, etag: str) -> None:
        super().__init__(etag)
        self.etag = etag


class Revision:
    """One conditional read: which counter, the request's variant, the client's ETags.

    A manager queues :meth:`queue` in its first pipeline and calls :meth:`check` with the reply
    once access is checked; ``etag`` is then set (or None: no counter, the view hashes the body).
    """

    def __init__(self, scope: str, entity_id: str, field: str, variant: str, if_none_match: str) -> None:
        self.key = SCOPES[scope](entity_id)
        self.field = field
        self.variant = hashlib.sha256(variant.encode()).hexdigest()[:16]
        self.client_tags = parse_tags(if_none_match)
        self.etag: str | None = None

    def queue(self, pipe: Any) -> None:
        pipe.hget(self.key, self.field)

    def check(self, value: str | None) -> None:
        if value is None:
            return
        self.etag = f'"{self.field}.{value}.{self.variant}"'
        if self.matches(self.etag):
            raise NotModified(self.etag)

    def matches(self, etag: str) -> bool:
        return "*" in self.client_tags or etag in self.client_tags


def parse_tags(header: str) -> set[str]:
    """The entity tags of an ``If-None-Match`` header (weak ones compare by their opaque part)."""
    tags = set()
    for part in header.split(","):
        part = part.strip()
        tags.add(part[2:] if part.startswith("W/") else part)
    tags.discard("")
    return tags
