"""The admin's calls into the other parts: semantic search, the indexer, the vector store, gamification.

Kept in one module so the pages stay independent of how those parts spell their APIs. Imports
are inside the functions: the admin must load (and its entity pages work) without pulling in
an embedding model.
"""

from __future__ import annotations

from typing import Any

SEARCH_KINDS = ("message", "document")
REINDEX_CONSEQUENCES = ["Every message and document of the user is embedded again and upserted to the vector store."]


def search(query: str, *, kinds: list[str], user_id: str | None, limit: int) -> list[dict[str, Any]]:
    raise NotImplementedError


def backends() -> dict[str, Any]:
    return {}


def indexer_status() -> dict[str, Any] | None:
    return None


def retry_dead_letters() -> str:
    raise NotImplementedError


def vector_stats() -> dict[str, Any] | None:
    return None


def reindex_user(user_id: str) -> str:
    raise NotImplementedError


def gamification_panel(user_id: str) -> dict[str, Any] | None:
    return None


def goals(user_id: str) -> list[dict[str, Any]] | None:
    return None


def restore_streak_form(user_id: str, query: Any) -> dict[str, Any]:
    return {"facts": [], "consequences": [], "hidden": {}}


def restore_streak(user_id: str, form: Any) -> str:
    raise NotImplementedError
