"""Every Redis key name of the project-level plumbing (live updates), and nothing else builds them.

The braces are hash tags: a user's replay stream lives in the slot of the user's other keys.
"""

from __future__ import annotations

import re

from mookti.redis import current_prefix, key

EVENTS = re.compile(r"user:\{[^{}]+\}:events")


def events(user_id: str) -> str:
    """STREAM of a user's live-update events: the replay log (stream id = event id). Its entries
    are in the stored form of ``mookti.events`` (read them with ``events.decode``)."""
    return key(f"user:{{{user_id}}}:events")


def is_events(name: str) -> bool:
    """True if ``name`` (prefixed) is a user's event stream (the admin shows its events decoded)."""
    return name.startswith(current_prefix()) and bool(EVENTS.fullmatch(name[len(current_prefix()) :]))


def outbox() -> str:
    """STREAM of indexing work: what changed, staged in the write that changed it (consumer group of
    ``run_indexer`` processes)."""
    return key("outbox:index")


def idempotency(digest: str) -> str:
    """STRING: an ``Idempotency-Key`` request's claim (when it began) or its stored answer (JSON)."""
    return key(f"idempotency:{digest}")
