"""Every Redis key name of live updates (websocket tickets), and nothing else builds them.

The user's event stream itself belongs to the kernel (:mod:`mookti.keys`)."""

from __future__ import annotations

from mookti.redis import key


def ws_ticket(digest: str) -> str:
    """STRING (JSON) behind a single-use websocket ticket, by the ticket's SHA-256 (EX <= 60 s)."""
    return key(f"ws-ticket:{{{digest}}}")
