"""The repair checks of semantic search: the vector store against Redis (registered with repair).

Per user namespace: records the indexer would write but the store lacks, and records the store
has for nothing. The expected set comes from the indexer's own plan (no embedding); a record
outside it counts as orphaned only if planning its own subject does not keep it either (its
message may exist while the chat is missing from its owner's index, which the storage checks fix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mookti import outbox
from mookti.redis import Write
from storage.managers import users
from storage.portability.repair import Problem, RepairReport, register_check
from storage.search.indexing import Subject, plan, user_subjects
from storage.search.vectors import get_vector_store, parse_vector_id, user_namespace


def listable_vector_store(report: RepairReport) -> Any | None:
    """The configured vector store if it can list record ids; else None and a note saying why."""
    try:
        store = get_vector_store()
    except Exception as exc:
        report.notes.append(f"vector store unavailable ({exc}): vectors not checked")
        return None
    if not callable(getattr(store, "list_ids", None)):
        report.notes.append(f"vector store not listable: {type(store).__name__} has no list_ids(); vectors not checked")
        return None
    return store


def _subject(vector_id: str) -> Subject:
    kind, parent, item = parse_vector_id(vector_id)
    return Subject("message", parent, item) if kind == "message" else Subject("document", parent)


def _reindex(user_id: str, vector_id: str) -> Callable[[Write], None]:
    """Enqueue the record's subject: the indexer re-reads Redis and upserts or deletes it."""
    subject = _subject(vector_id)
    if subject.kind == "message":
        return lambda w: outbox.stage(
            w, "upsert", kind="message", userId=user_id, chatId=subject.parent, messageId=subject.item
        )
    return lambda w: outbox.stage(w, "upsert", kind="document", userId=user_id, documentId=subject.parent)


def vector_problems(report: RepairReport) -> list[Problem]:
    """Missing and orphaned records of every user's namespace (nothing when the store cannot list)."""
    store = listable_vector_store(report)
    if store is None:
        return []
    problems: list[Problem] = []
    documents_enqueued: set[str] = set()
    for user_id in users.all_ids():
        expected: set[str] = set()
        for subjects in user_subjects(user_id):
            expected.update(plan(user_id, subjects).upserts)
        try:
            listed = set(store.list_ids(user_namespace(user_id), ""))
        except Exception as exc:
            report.notes.append(f"vector store unavailable ({exc}): vectors checked only in part")
            return problems
        extra = listed - expected
        if extra:  # entities that exist but are not reachable from the user's indexes are not orphans
            extra -= set(plan(user_id, [_subject(v) for v in extra]).upserts)
        for kind, vector_ids in (("vector missing", expected - listed), ("vector without entity", extra)):
            for vector_id in sorted(vector_ids):
                parent = parse_vector_id(vector_id)[1]
                is_document = vector_id.startswith("doc:")
                fix = None if is_document and parent in documents_enqueued else _reindex(user_id, vector_id)
                if is_document:
                    documents_enqueued.add(parent)
                problems.append(Problem(kind, vector_id, f"user {user_id}", fix or (lambda w: None)))
    return problems


register_check("vectors", vector_problems, external=True)
