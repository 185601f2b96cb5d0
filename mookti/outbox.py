"""Indexing work for the vector store, appended in the same step as the write that causes it.

Entries name what changed, not the text: the indexer reads the current state from Redis when
it gets to the entry, so an upsert that arrives after a delete finds nothing and deletes.
Operations: ``upsert`` / ``delete`` (kind message or document), ``delete_chat``,
``delete_document``, ``delete_user``.
"""

from __future__ import annotations

from typing import Any

from mookti import keys
from mookti.redis import Write


def stage(write: Write, op: str, **fields: Any) -> None:
    entry = {"op": op, **{name: str(value) for name, value in fields.items() if value is not None}}
    write.step(lambda p: p.xadd(keys.outbox(), entry))


def stream() -> str:
    """The outbox stream's name, for its consumers (the search indexer's consumer group)."""
    return keys.outbox()
