"""Hybrid search over a user's conversations and documents (and shared learning content).

Used by ``POST /api/storage/search`` and the admin's semantic search page. Steps: embed the query
(cached in Redis), query the user's namespace with the metadata filter and the query's words
(the store fuses meaning and keywords, see :mod:`storage.search.hybrid`), and the learning
namespaces when asked; then each registered kind (:mod:`storage.search.kinds`) checks its hits
against its owner's data in one round trip: hits of things that are gone, or not the user's, are
dropped (the index may lag a deletion by a moment), and titles are as they are now, not as they
were when indexed. Chunks of one message or document chunk fold into one hit; hits are grouped by
conversation, document or learning item, best group first.

Round trips: the embedding cache GET, one per kind with hits, the cache write on a miss, plus the
vector store query (and the model or embedding API call on a cache miss).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import RedisError

from mookti.backends import BackendError
from mookti.errors import Invalid, Unavailable
from mookti.ids import is_valid_id
from mookti.redis import get_redis
from storage.search import kinds as registry
from storage.search.embeddings import Embeddings, get_embeddings, query_vector
from storage.search.vectors import (
    Match,
    VectorStore,
    check_index,
    get_vector_store,
    learning_namespaces,
    search_settings,
    user_namespace,
)
from storage.search.vectors import filters as f

ROLES = ("user", "assistant", "system")
MAX_QUERY_CHARS = 2000
MAX_TOP_K = 100
INDEX_CHECK_SECONDS = 30.0
_checked: dict[tuple[str, str], float] = {}


@dataclass(frozen=True)
class SearchRequest:
    user_id: str
    query: str
    kinds: tuple[str, ...]
    chat_id: str | None
    role: str | None
    from_: int | None  # microseconds
    to: int | None
    top_k: int


def own_kinds(request: SearchRequest) -> list[str]:
    """The requested kinds that live in the user's namespace."""
    return [k for k in request.kinds if not registry.get(k).shared]  # type: ignore[union-attr]


def user_filter(request: SearchRequest) -> f.Filter | None:
    own = own_kinds(request)
    created: dict[str, float] = {}
    if request.from_ is not None:
        created["$gte"] = request.from_ / 1_000_000
    if request.to is not None:
        created["$lte"] = request.to / 1_000_000
    spec: dict[str, Any] = {"userId": {"$eq": request.user_id}, "kind": {"$in": own}}
    if request.chat_id:
        spec["chatId"] = {"$eq": request.chat_id}
    if request.role:
        spec["role"] = {"$eq": request.role}
    if created:
        spec["createdAt"] = created
    return f.parse(spec)


def _ensure_index(embeddings: Embeddings, store: VectorStore) -> None:
    """The index must have been built with this model (checked every ``INDEX_CHECK_SECONDS``)."""
    cache_key = (embeddings.model_id, store.describe())
    if _checked.get(cache_key, 0.0) > time.monotonic():
        return
    check_index(embeddings, store)
    _checked[cache_key] = time.monotonic() + INDEX_CHECK_SECONDS


def search(
    user_id: str,
    query: str,
    *,
    kinds: Sequence[str] | None = None,
    chat_id: str | None = None,
    role: str | None = None,
    from_: int | None = None,
    to: int | None = None,
    top_k: int = 10,
    include_learning: bool = False,
    embeddings: Embeddings | None = None,
    store: VectorStore | None = None,
) -> dict[str, Any]:
    """``{"query", "results": [group, ...]}``; raises ``Invalid`` (400) or ``Unavailable`` (503).

    ``kinds`` of the registered kinds (message, document, learning, ...; default those searched by
    default, message and document); ``from_``/``to`` in
    microseconds; ``top_k`` hits in all (1-100). The API serializer checks the same things.
    """
    text = query.strip() if isinstance(query, str) else ""
    if not text:
        raise Invalid("Give a query.", {"query": ["This field may not be blank."]})
    if len(text) > MAX_QUERY_CHARS:
        raise Invalid("The query is too long.", {"query": [f"At most {MAX_QUERY_CHARS} characters."]})
    chosen = list(kinds) if kinds else registry.default_names()
    if any(registry.get(k) is None for k in chosen):
        raise Invalid("Unknown kind.", {"kinds": [f"Use {', '.join(registry.names())}."]})
    if include_learning and "learning" not in chosen:
        chosen.append("learning")
    if chat_id is not None and not is_valid_id(chat_id):
        raise Invalid("Bad chatId.", {"chatId": ["Use 1-100 letters, digits, '-', '_' or '.'."]})
    if role is not None and role not in ROLES:
        raise Invalid("Unknown role.", {"role": [f"Use {', '.join(ROLES)}."]})
    if from_ is not None and to is not None and from_ > to:
        raise Invalid("from is after to.", {"from": ["Must not be after to."]})
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise Invalid("Bad topK.", {"topK": [f"Use 1-{MAX_TOP_K}."]})
    request = SearchRequest(user_id, text, tuple(dict.fromkeys(chosen)), chat_id, role, from_, to, top_k)
    try:
        embeddings = embeddings or get_embeddings()
        store = store or get_vector_store()
        _ensure_index(embeddings, store)
        vector = query_vector(request.query, embeddings)
        matches = _query(store, request, vector.values)
    except BackendError as exc:
        raise Unavailable(f"Search is unavailable right now: {exc}") from exc
    if not vector.cached:
        _write_cache(vector)
    hits = fold_chunks(_check_and_title(request, matches))
    return {"query": request.query, "results": group_hits(hits[: request.top_k])}


def _write_cache(vector: Any) -> None:
    """A Redis hiccup only skips the cache write."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        vector.queue_cache_write(pipe)
        pipe.execute()
    except RedisError:
        pass


def _query(store: VectorStore, request: SearchRequest, vector: list[float]) -> list[Match]:
    # ask for more than top_k: hits of just-deleted items are dropped, chunks of one message folded
    fetch = min(MAX_TOP_K * 3, request.top_k * 3)
    matches: list[Match] = []
    text = request.query
    if own_kinds(request):
        matches += store.query(
            user_namespace(request.user_id), vector, top_k=fetch, filter=user_filter(request), text=text
        )
    if any(registry.get(k).shared for k in request.kinds) and not (request.chat_id or request.role):  # type: ignore[union-attr]
        for namespace in learning_namespaces():
            matches += store.query(namespace, vector, top_k=fetch, text=text)
    floor = search_settings().get("MIN_SCORE")
    if floor is not None:
        matches = [m for m in matches if m.score >= floor]
    return sorted(matches, key=lambda m: m.score, reverse=True)


def _check_and_title(request: SearchRequest, matches: list[Match]) -> list[dict[str, Any]]:
    """Drop hits of things that are gone or not the user's; titles as they are now (each kind checks its own)."""
    user_ns = user_namespace(request.user_id)
    by_kind: dict[str, list[Match]] = {}
    for match in matches:
        name = "learning" if match.namespace != user_ns else str(match.metadata.get("kind", ""))
        by_kind.setdefault(name, []).append(match)
    visible: dict[tuple[str, str], Any] = {}
    for name, own in by_kind.items():
        kind = registry.get(name)
        if kind is None or kind.shared != (name == "learning"):
            continue
        for match_id, seen in kind.visible(request.user_id, own).items():
            visible[(name, match_id)] = (kind.group, seen)
    hits = []
    for match in matches:
        name = "learning" if match.namespace != user_ns else str(match.metadata.get("kind", ""))
        found = visible.get((name, match.id))
        if found is not None:
            group, seen = found
            hits.append(_hit(match, group, seen.group_id, seen.title))
    return hits


def _hit(match: Match, group_type: str, group_id: str, title: str) -> dict[str, Any]:
    meta = match.metadata
    created = meta.get("createdAt")
    hit = {
        "groupType": group_type,
        "groupId": group_id,
        "namespace": match.namespace,
        "title": title,
        "id": match.id,
        "score": round(float(match.score), 6),
        "snippet": meta.get("snippet") or meta.get("text") or meta.get("content") or "",
        "createdAt": int(float(created) * 1_000_000) if isinstance(created, int | float) else None,
        "role": meta.get("role"),
        "messageId": meta.get("messageId"),
        "chunk": int(meta["chunk"]) if isinstance(meta.get("chunk"), int | float) else None,
        "source": meta.get("source") or None,
    }
    if isinstance(hit["snippet"], str) and len(hit["snippet"]) > 500:
        hit["snippet"] = hit["snippet"][:499] + "…"
    return hit


def fold_chunks(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One hit per message: a long message's chunks fold into their best one (hits are best first)."""
    seen: set[tuple[str, str, str]] = set()
    folded = []
    for hit in hits:
        if hit["messageId"]:
            key = (hit["namespace"], hit["groupId"], hit["messageId"])
            if key in seen:
                continue
            seen.add(key)
        folded.append(hit)
    return folded


def group_hits(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hits grouped by conversation / document / learning item; groups and hits best first."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for hit in hits:
        key = (hit["groupType"], hit["namespace"], hit["groupId"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "type": hit["groupType"],
                "id": hit["groupId"],
                "chatId": hit["groupId"] if hit["groupType"] == "chat" else None,
                "documentId": hit["groupId"] if hit["groupType"] == "document" else None,
                "namespace": hit["namespace"] if hit["groupType"] == "learning" else None,
                "source": hit["source"] if hit["groupType"] == "learning" else None,
                "title": hit["title"],
                "score": hit["score"],
                "snippet": hit["snippet"],
                "createdAt": hit["createdAt"],
                "hits": [],
            }
        group["hits"].append({k: hit[k] for k in ("id", "messageId", "chunk", "role", "snippet", "score", "createdAt")})
    return sorted(groups.values(), key=lambda g: g["score"], reverse=True)
