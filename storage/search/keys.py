"""Every Redis key name of semantic search (outbox, query-embedding cache, index identity,
per-user index lease), and nothing else builds them."""

from __future__ import annotations

from mookti.redis import key


def outbox_dead() -> str:
    """STREAM of entries that failed too often, with their error."""
    return key("outbox:index:dead")


def query_embedding(model_id: str, digest: str) -> str:
    """STRING cached query embedding (TTL)."""
    return key(f"embedding-cache:{model_id}:{digest}")


def vector_index_meta() -> str:
    """HASH model and dimension the vector store was built with."""
    return key("vector-index:meta")


def outbox_attempts() -> str:
    """HASH outbox entry id -> failed attempts so far (removed when the entry is acked)."""
    return key("outbox:index:attempts")


def index_lease(user_id: str) -> str:
    """STRING consumer name holding the right to index this user's data now (PX lease)."""
    return key(f"user:{{{user_id}}}:index-lease")


def vector_chunks(user_id: str) -> str:
    """HASH ``{chatId}#{messageId}`` -> how many records a long message has in the store (only > 1)."""
    return key(f"user:{{{user_id}}}:vector-chunks")


def learning_items(namespace: str) -> str:
    """HASH item id -> JSON {hash, title, source, chunks} of the learning content loaded into ``namespace``."""
    return key(f"learning:{{{namespace}}}:items")
