"""What can be searched: kinds of indexed things, registered by the apps that own them.

A kind (``message``, ``document``, ``learning``, or a new app's, e.g. ``flashcard``) tells the
indexer which outbox entries are its own and what records the store should hold for them, and
tells a search how to check its hits against the owner's data and group them. Apps register
their kinds in ``AppConfig.ready``::

    from storage.search.kinds import register
    register(FlashcardKind())

The indexer (:mod:`storage.search.indexing`), ``reindex`` and the search query read this registry;
nothing in search lists the kinds by hand. The search app registers the kinds of chat data
(it reads them through storage's managers; storage itself does not know about search) and its own
learning content.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Subject:
    """Something whose records must match the owner's data now, e.g. ("message", chatId, messageId),
    ("chat", chatId), ("document", documentId) or ("user",)."""

    kind: str
    parent: str = ""
    item: str = ""


@dataclass
class Changes:
    """What to do to one namespace."""

    drop: bool = False
    prefixes: set[str] = field(default_factory=set)  # every record under these prefixes goes
    deletes: set[str] = field(default_factory=set)
    upserts: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (text, metadata)
    # (prefix, ids to keep): records under the prefix whose id (or whose chunk's first record) is
    # not kept are stale
    stale_prefixes: list[tuple[str, set[str]]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)  # bookkeeping once the store is written

    def __bool__(self) -> bool:
        return bool(self.drop or self.prefixes or self.deletes or self.upserts or self.stale_prefixes)


@dataclass
class Visible:
    """A hit that may be shown: its group (a chat, a document, a learning item) and title now."""

    group_id: str
    title: str


class IndexableKind(ABC):
    """One kind of searchable thing. Subclasses set the class attributes and the methods."""

    #: the value of the records' ``kind`` metadata and of the search API's ``kinds``
    name: str
    #: the result group type of its hits (``chat``, ``document``, ``learning``, ...)
    group: str
    #: the subject kinds :meth:`plan` handles (outbox entries become these)
    subjects: tuple[str, ...] = ()
    #: those of them that are one item each (counted by ``reindex``'s progress bar)
    items: tuple[str, ...] = ()
    #: searched when a request names no kinds
    default: bool = True
    #: records live in the shared (learning) namespaces, not in the user's
    shared: bool = False

    def subjects_of_entry(self, fields: dict[str, str]) -> list[Subject] | None:
        """The subjects an outbox entry names, or None when the entry is another kind's."""
        return None

    def user_subjects(self, user_id: str) -> Iterable[list[Subject]]:
        """Every subject of a user, in groups (``reindex``)."""
        return ()

    def count(self, user_ids: Sequence[str]) -> int:
        """How many items ``reindex`` embeds for these users (a progress bar's total)."""
        return 0

    def plan(self, user_id: str, subjects: Sequence[Subject], changes: Changes) -> None:  # noqa: B027
        """Read the subjects' current state and add the store changes that make it match."""

    @abstractmethod
    def visible(self, user_id: str, matches: Sequence[Any]) -> dict[str, Visible]:
        """Match id -> :class:`Visible` for the matches still there and ``user_id``'s (one round trip)."""


_kinds: dict[str, IndexableKind] = {}


def register(kind: IndexableKind) -> IndexableKind:
    """Make a kind searchable (again: a new instance replaces the old one of that name)."""
    _kinds[kind.name] = kind
    return kind


def all_kinds() -> list[IndexableKind]:
    return list(_kinds.values())


def names() -> tuple[str, ...]:
    return tuple(_kinds)


def default_names() -> list[str]:
    return [k.name for k in _kinds.values() if k.default]


def get(name: str) -> IndexableKind | None:
    return _kinds.get(name)


def is_item(subject: Subject) -> bool:
    kind = for_subject(subject.kind)
    return kind is not None and subject.kind in kind.items


def for_subject(subject_kind: str) -> IndexableKind | None:
    return next((k for k in _kinds.values() if subject_kind in k.subjects), None)
