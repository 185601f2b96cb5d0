"""Shared learning content: read-only course material searched next to a user's own data.

It lives in the namespaces of ``MOOKTI_SEARCH_LEARNING_NAMESPACES`` (not per user), is loaded with
``manage.py load_learning`` (:mod:`storage.search.learning`) and is visible to every user. A hit
names its source (``source``: the file or the id the content came with) and groups by item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.search.kinds import IndexableKind, Visible


def learning_group(match: Any) -> str:
    """The item a learning hit belongs to: its ``documentId`` metadata, else its id before ``#``."""
    return str(match.metadata.get("documentId") or match.id.partition("#")[0])


class LearningKind(IndexableKind):
    name = "learning"
    group = "learning"
    default = False
    shared = True

    def visible(self, user_id: str, matches: Sequence[Any]) -> dict[str, Visible]:
        return {m.id: Visible(learning_group(m), m.metadata.get("title") or m.namespace) for m in matches}
