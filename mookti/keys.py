"""Every Redis key name of the project-level plumbing (live updates), and nothing else builds them.

The braces are hash tags: a user's replay stream lives in the slot of the user's other keys.
"""

from __future__ import annotations

from mookti.redis import key


def events(user_id: str) -> str:
    """STREAM of a user's live-update events: the replay log (stream id = event id)."""
    return key(f"user:{{{user_id}}}:events")


def outbox() -> str:
    """STREAM of indexing work: what changed, staged in the write that changed it (consumer group of
    ``run_indexer`` processes)."""
    return key("outbox:index")


def idempotency(digest: str) -> str:
    """STRING: an ``Idempotency-Key`` request's claim (when it began) or its stored answer (JSON)."""
    return key(f"idempotency:{digest}")
