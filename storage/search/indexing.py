"""What the vector store should hold for some subjects or a user: read from their owners' data now.

Outbox entries only name what changed. :func:`sync` asks each registered kind
(:mod:`storage.search.kinds`) to read the *current* state of its subjects and plan the store
changes: an existing message with text is upserted, a missing one deleted, a deleted chat's or
document's records removed, a deleted user's namespace dropped. So the outcome does not depend on
the order in which entries are handled, as long as two processes never sync the same user at once
(the indexer holds a per-user lease for that).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from storage.managers import snapshots
from storage.search import chunk_counts, kinds
from storage.search.embeddings import Embeddings
from storage.search.kinds import Changes, Subject
from storage.search.vectors import VectorRecord, VectorStore, record_base, user_namespace

__all__ = ["Changes", "Subject", "apply", "plan", "subjects_of_entry", "sync", "user_subjects"]


def plan(user_id: str, subjects: Iterable[Subject]) -> Changes:
    """Read the subjects' current state (through their kinds) and decide the changes."""
    subjects = list(dict.fromkeys(subjects))
    changes = Changes()
    by_kind: dict[str, list[Subject]] = defaultdict(list)
    for subject in subjects:
        if subject.kind == "user":
            continue
        kind = kinds.for_subject(subject.kind)
        if kind is None:
            raise ValueError(f"No searchable kind handles {subject.kind!r} subjects.")
        by_kind[kind.name].append(subject)
    for name, own in by_kind.items():
        kinds.get(name).plan(user_id, own, changes)  # type: ignore[union-attr]
    if any(s.kind == "user" for s in subjects) and not snapshots.user_exists(user_id):
        changes.drop = True
        changes.after.append(lambda: chunk_counts.forget_user(user_id))
    return changes


def embed_changes(embeddings: Embeddings, changes_by_namespace: dict[str, Changes]) -> dict[str, list[VectorRecord]]:
    """Embed every text to upsert, across namespaces, in one call (the backend batches it)."""
    order = [(ns, vid) for ns, changes in changes_by_namespace.items() for vid in changes.upserts]
    texts = [changes_by_namespace[ns].upserts[vid][0] for ns, vid in order]
    vectors = embeddings.embed(texts) if texts else []
    records: dict[str, list[VectorRecord]] = defaultdict(list)
    for (ns, vid), text, vector in zip(order, texts, vectors, strict=True):
        records[ns].append(VectorRecord(vid, vector, changes_by_namespace[ns].upserts[vid][1], text))
    return records


def apply(store: VectorStore, namespace: str, changes: Changes, records: list[VectorRecord]) -> None:
    """Deletes first (namespace, prefixes, stale records, ids), upserts last, then the bookkeeping."""
    if changes.drop:
        store.delete_namespace(namespace)
    for prefix in sorted(changes.prefixes):
        store.delete_prefix(namespace, prefix)
    stale = set(changes.deletes)
    for prefix, keep in changes.stale_prefixes:
        listed = store.list_ids(namespace, prefix)
        stale.update(vid for vid in listed if vid not in keep and record_base(vid) not in keep)
    stale -= set(changes.upserts)
    if stale:
        store.delete(namespace, sorted(stale))
    if records:
        store.upsert(namespace, records)
    for step in changes.after:
        step()


def sync(
    embeddings: Embeddings,
    store: VectorStore,
    subjects_by_user: dict[str, list[Subject]],
    before_write: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Make the store match the owners' data for these subjects; returns counts of upserted and deleted records.

    ``before_write`` runs after embedding, right before the store is touched (the indexer checks
    it still holds its leases there).
    """
    changes = {user_namespace(user): plan(user, subjects) for user, subjects in subjects_by_user.items()}
    changes = {ns: c for ns, c in changes.items() if c}
    started = time.perf_counter()
    records = embed_changes(embeddings, changes)
    embed_seconds = time.perf_counter() - started
    if before_write is not None:
        before_write()
    for namespace, namespace_changes in changes.items():
        apply(store, namespace, namespace_changes, records.get(namespace, []))
    return {
        "upserted": sum(len(r) for r in records.values()),
        "deleted": sum(len(c.deletes - set(c.upserts)) + len(c.prefixes) for c in changes.values()),
        "embed_seconds": embed_seconds,
    }


def subjects_of_entry(fields: dict[str, str]) -> list[Subject]:
    """The subjects an outbox entry names, asking each kind (ValueError when none takes it)."""
    from mookti.ids import check_id

    check_id(fields.get("userId"), "userId")
    if fields.get("op") == "delete_user":
        return [Subject("user")]
    for kind in kinds.all_kinds():
        subjects = kind.subjects_of_entry(fields)
        if subjects is not None:
            return subjects
    raise ValueError(f"Unknown outbox entry: op={fields.get('op', '')!r} kind={fields.get('kind', '')!r}.")


def user_subjects(user_id: str) -> Iterable[list[Subject]]:
    """Every subject of a user, a group (a chat, the documents, ...) at a time, from every kind."""
    for kind in kinds.all_kinds():
        yield from kind.user_subjects(user_id)


def count_items(user_ids: list[str]) -> int:
    """What a rebuild of these users embeds (messages, documents, other kinds' items)."""
    return sum(kind.count(user_ids) for kind in kinds.all_kinds())
