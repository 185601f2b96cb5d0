"""Read-only counts and lookups over chat data for staff tools (the admin, reindex sizes).

Kept apart from the entity managers because nothing here is part of the API's behaviour: these
are the sizes and positions the admin shows, read from the same indexes the managers keep.
"""

from __future__ import annotations

from mookti.errors import NotFound
from mookti.redis import get_redis, pipeline
from storage import keys
from storage.managers.users import USER_TYPES


def user_totals() -> dict[str, int]:
    """All users (``"all"``) and users of each type, one round trip."""
    pipe = pipeline()
    pipe.zcard(keys.users())
    for user_type in USER_TYPES:
        pipe.zcard(keys.users_by_type(user_type))
    replies = pipe.execute()
    return dict(zip(("all", *USER_TYPES), replies, strict=True))


def newest_user_ids(limit: int) -> list[str]:
    """Ids of the ``limit`` newest users."""
    return get_redis().zrevrange(keys.users(), 0, limit - 1)


def user_counts(user_id: str) -> dict[str, int]:
    """Sizes of the user's indexes (chats, documents, API tokens), one round trip."""
    pipe = pipeline()
    pipe.zcard(keys.user_chats(user_id))
    pipe.zcard(keys.user_documents(user_id))
    pipe.zcard(keys.user_tokens(user_id))
    chat_count, document_count, token_count = pipe.execute()
    return {"chats": chat_count, "documents": document_count, "tokens": token_count}


def item_count(user_ids: list[str]) -> int:
    """Messages and documents of these users (what a rebuild of their vectors embeds): two pipelined passes."""
    pipe = pipeline()
    for user_id in user_ids:
        pipe.zrange(keys.user_chats(user_id), 0, -1)
        pipe.zcard(keys.user_documents(user_id))
    replies = pipe.execute()
    pipe = pipeline()
    for chat_ids in replies[::2]:
        for chat_id in chat_ids:
            pipe.zcard(keys.chat_messages(chat_id))
    return sum(pipe.execute()) + sum(replies[1::2])


def chat_message_count(chat_id: str) -> int:
    return int(get_redis().zcard(keys.chat_messages(chat_id)))


def message_page_cursor(chat_id: str, message_id: str, page_size: int) -> str | None:
    """The ``starting_after`` cursor of the oldest-first page of ``page_size`` that holds the message."""
    client = get_redis()
    rank = client.zrank(keys.chat_messages(chat_id), message_id)
    if rank is None:
        raise NotFound("message")
    start = rank - rank % page_size
    if not start:
        return None
    return client.zrange(keys.chat_messages(chat_id), start - 1, start - 1)[0]


def document_owner(document_id: str) -> str | None:
    """The id of the document's owner (None when there is no such document)."""
    return get_redis().hget(keys.document(document_id), "userId") or None
