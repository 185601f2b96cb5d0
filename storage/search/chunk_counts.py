"""How many records each long message has in the store (search's own bookkeeping in Redis).

A message's first record is ``msg:{chatId}#{messageId}``; a long one adds ``…:{n}`` records. When
it is edited shorter or deleted, the indexer deletes the numbers it no longer has: this count
says which, without listing the store per message. Only counts above 1 are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from mookti.redis import get_redis
from storage.search import keys


def _field(pair: tuple[str, str]) -> str:
    return f"{pair[0]}#{pair[1]}"


def get(user_id: str, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Record counts of these (chatId, messageId) messages; 1 when not recorded."""
    if not pairs:
        return {}
    values = get_redis().hmget(keys.vector_chunks(user_id), [_field(p) for p in pairs])
    return {pair: int(value) if value else 1 for pair, value in zip(pairs, values, strict=True)}


def put(user_id: str, counts: dict[tuple[str, str], int]) -> None:
    many = {_field(p): n for p, n in counts.items() if n > 1}
    few = [_field(p) for p, n in counts.items() if n <= 1]
    pipe = get_redis().pipeline(transaction=False)
    if many:
        pipe.hset(keys.vector_chunks(user_id), mapping=many)
    if few:
        pipe.hdel(keys.vector_chunks(user_id), *few)
    if many or few:
        pipe.execute()


def forget_chat(user_id: str, chat_id: str) -> None:
    client = get_redis()
    fields = [name for name, _ in client.hscan_iter(keys.vector_chunks(user_id), match=f"{chat_id}#*")]
    if fields:
        client.hdel(keys.vector_chunks(user_id), *fields)


def forget_user(user_id: str) -> None:
    get_redis().delete(keys.vector_chunks(user_id))
