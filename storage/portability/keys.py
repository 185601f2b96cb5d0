"""Every Redis key name of data portability (import checkpoints), and nothing else builds them."""

from __future__ import annotations

from mookti.redis import key


def import_checkpoint(source: str) -> str:
    """HASH table -> last imported key (JSON) of an interrupted ``import_chatbot`` run from ``source``."""
    return key(f"import-checkpoint:{source}")
