"""Search in the staff admin: the semantic search page, reindex, the indexer and vector-store panels.

Registered with :mod:`storage.staff.registry` (imported by the admin's autodiscovery of ``staff``
modules), so the admin does not import search. It reads through search's own functions (the
index's recorded model, the indexer's metrics) and the storage managers, never the Redis client.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from mookti.backends import BackendError
from mookti.errors import DomainError, Unavailable
from storage.managers import inspection, users
from storage.search import kinds as searchable
from storage.search.indexer import dead_letters, index_metrics, rebuild_user, retry_dead_letters
from storage.search.vectors import get_vector_store, learning_namespaces, recorded_index, user_namespace
from storage.staff import registry
from storage.staff.audit import audit
from storage.staff.views.common import (
    BadInput,
    confirm_page,
    confirmed,
    done,
    id_param,
    int_param,
    load_user,
    render,
    user_url,
    when,
)

MAX_QUERY = 500
# Without a user, the search runs over the namespaces of at most this many of the newest users.
ALL_USERS_NAMESPACES = 50
ALL_USERS_CANDIDATES = 1000
REINDEX_CONSEQUENCES = [
    "The user's namespace is dropped and every message and document is embedded again from Redis, now.",
    "Search for this user is incomplete until it finishes; the indexer pauses this user meanwhile.",
    "Large histories take a while here: `manage.py reindex --user <id>` does the same with a progress bar.",
]


# --- the semantic search page ---------------------------------------------------------------------
def offered_kinds() -> list[str]:
    """The kinds the search form offers: learning content only where shared namespaces are configured."""
    return [k for k in searchable.names() if k != "learning" or learning_namespaces()]


def run_search(query: str, *, kinds: list[str], user_id: str | None, limit: int) -> dict[str, Any]:
    """Hits (best first) of one user, or of the newest users with vectors; see :mod:`storage.search.query`.

    Shared learning content is searched once, with the first user's call (it belongs to nobody).
    """
    from storage.search.query import search  # loads the embedding model: only when a query is run

    own = [k for k in kinds if k != "learning"]
    targets = [user_id] if user_id else _users_with_vectors()
    calls = [(target, list(own)) for target in targets] if own else []
    if "learning" in kinds:
        if calls:
            calls[0][1].append("learning")
        else:
            calls = [(targets[0] if targets else "staff", ["learning"])]
    hits: dict[tuple[str, str], dict[str, Any]] = {}
    for target, wanted in calls:
        for group in search(target, query, kinds=wanted, top_k=limit)["results"]:
            owner = None if group["type"] == "learning" else target
            for hit in group["hits"]:
                hits.setdefault((owner or group.get("namespace") or "", hit["id"]), _hit_row(group, hit, owner))
    ranked = sorted(hits.values(), key=lambda h: h["score"], reverse=True)[:limit]
    note = ""
    if not user_id and len(targets) == ALL_USERS_NAMESPACES:
        note = f"Searched the {ALL_USERS_NAMESPACES} newest users with vectors; name a user to search anyone else."
    return {"hits": ranked, "searched": len(targets), "note": note}


def _users_with_vectors() -> list[str]:
    present = set(get_vector_store().stats()["namespaces"])
    newest = inspection.newest_user_ids(ALL_USERS_CANDIDATES)
    return [u for u in newest if user_namespace(u) in present][:ALL_USERS_NAMESPACES]


def _hit_row(group: dict[str, Any], hit: dict[str, Any], user_id: str | None) -> dict[str, Any]:
    kind = {"chat": "message", "document": "document"}.get(group["type"], group["type"])
    return {
        "kind": kind,
        "score": hit["score"],
        "title": group["title"],
        "snippet": hit["snippet"],
        "createdAt": hit.get("createdAt"),
        "role": hit.get("role"),
        "chatId": group.get("chatId"),
        "messageId": hit.get("messageId"),
        "documentId": group.get("documentId"),
        "namespace": group.get("namespace"),
        "userId": user_id,
    }


def backends() -> dict[str, Any]:
    """What search runs on, without loading the model: the configured classes and the index's record."""
    configured = settings.MOOKTI_EMBEDDINGS
    model = configured.get("OPTIONS", {}).get("model") or configured.get("OPTIONS", {}).get("model_name") or ""
    meta = recorded_index()
    embeddings = f"{configured['BACKEND'].rsplit('.', 1)[-1]}{f' ({model})' if model else ''}"
    if meta:
        embeddings += f"; index built with {meta.get('model')}, {meta.get('dimension')} dimensions"
    else:
        embeddings += "; the index has not been built yet"
    try:
        store = get_vector_store().describe()
    except BackendError as exc:
        store = f"{settings.MOOKTI_VECTOR_STORE['BACKEND']} (unavailable: {exc})"
    return {"embeddings": embeddings, "vector_store": store}


def resolve_user(value: str) -> str | None:
    """A user given by email or id (the form takes either)."""
    value = value.strip()
    if not value:
        return None
    if "@" in value:
        user = users.get_by_email(value)
        if user is None:
            raise BadInput(f"user: no user with the email {value[:120]}.")
        return user["id"]
    return id_param(value, "user")


def source_url(site, hit: dict) -> str | None:
    if hit.get("chatId"):
        url = reverse("admin:mookti_chat", args=[hit["chatId"]], current_app=site.name)
        if hit.get("messageId"):
            return f"{url}?message={hit['messageId']}#message-{hit['messageId']}"
        return url
    if hit.get("documentId"):
        return reverse("admin:mookti_document", args=[hit["documentId"]], current_app=site.name)
    return None


def semantic_search(request: HttpRequest, site) -> HttpResponse:
    """What staff would find, with scores, snippets and links to the source."""
    query = request.GET.get("q", "").strip()
    if len(query) > MAX_QUERY:
        raise BadInput(f"q: at most {MAX_QUERY} characters.")
    chosen = request.GET.getlist("kind")
    unknown = [k for k in chosen if k not in searchable.names()]
    if unknown:
        raise BadInput(f"kind: “{unknown[0][:40]}” is not one of {', '.join(searchable.names())}.")
    offered = offered_kinds()
    kinds = chosen or offered
    user_field = request.GET.get("user", "")
    user_id = resolve_user(user_field)
    limit = int_param(request, "limit", 10, 1, 50)
    found, error, status = None, "", 200
    if query:
        try:
            found = run_search(query, kinds=kinds, user_id=user_id, limit=limit)
        except DomainError as exc:  # Invalid (400) or Unavailable (503): the page says so
            error, status = exc.message, exc.status_code
    hits = found["hits"] if found else None
    if hits:
        owners = {u["id"]: u["email"] for u in users.get_many(sorted({h["userId"] for h in hits if h["userId"]})) if u}
        for hit in hits:
            hit["created"] = when(hit.get("createdAt"))
            hit["url"] = source_url(site, hit)
            hit["userLabel"] = owners.get(hit["userId"], hit["userId"])
            hit["user_url"] = user_url(site, hit["userId"]) if hit["userId"] else None
    context = {
        "title": "Semantic search",
        "query": query,
        "kinds": kinds,
        "all_kinds": offered,
        "user_field": user_field,
        "limit": limit,
        "hits": hits,
        "note": found["note"] if found else "",
        "searched": found["searched"] if found else 0,
        "error": error,
        "backends": backends(),
    }
    return render(request, site, "admin/mookti/search.html", context, status=status)


# --- actions --------------------------------------------------------------------------------------
def reindex_user(request: HttpRequest, site, user_id: str) -> HttpResponse:
    user = load_user(user_id)
    if confirmed(request):
        try:
            summary = f"{rebuild_user(user_id)} messages and documents embedded again"
        except (BackendError, TimeoutError) as exc:
            raise Unavailable(f"Reindexing failed, nothing else changed: {exc}") from exc
        audit(request, "user.reindex", f"user:{user_id}", f"{user['email']}: {summary}")
        return done(request, f"Reindexing {user['email']}: {summary}.", user_url(site, user_id))
    counts = inspection.user_counts(user_id)
    return confirm_page(
        request,
        site,
        title="Reindex user",
        question=f"Rebuild the search vectors of {user['email']}?",
        facts=[
            ("User", user["email"]),
            ("Id", user_id),
            ("Chats", counts["chats"]),
            ("Documents", counts["documents"]),
            ("Messages and documents to embed", inspection.item_count([user_id])),
        ],
        consequences=REINDEX_CONSEQUENCES,
        button="Reindex",
        cancel=user_url(site, user_id),
    )


def retry_dead(request: HttpRequest, site) -> HttpResponse:
    back = reverse("admin:mookti_operations", current_app=site.name)
    if confirmed(request):
        summary = f"{retry_dead_letters()} put back on the outbox"
        audit(request, "indexer.retry_dead_letters", "outbox:index:dead", summary)
        return done(request, f"Dead letters: {summary}.", back)
    dead = index_metrics()["dead"]
    return confirm_page(
        request,
        site,
        title="Retry dead letters",
        question=f"Put the {dead} dead-lettered indexing entries back on the outbox?",
        facts=[("Dead letters", dead)],
        consequences=["The indexer retries them; entries that fail again are dead-lettered again."],
        button="Retry",
        cancel=back,
    )


# --- operations page panels -----------------------------------------------------------------------
def indexer_panel() -> dict[str, Any]:
    """Lag, pending, dead letters and consumers of the outbox group, and the newest dead letters."""
    metrics = index_metrics()
    rows = [
        ("Lag (not yet read)", metrics["lag"]),
        ("Pending (read, not acknowledged)", metrics["pending"]),
        ("Oldest pending", f"{metrics['oldestPendingSeconds']} s"),
        ("Dead letters", metrics["dead"]),
        ("Indexer processes (consumers)", metrics["consumers"]),
    ]
    dead = []
    for letter in dead_letters(10):
        fields = letter["fields"]
        target = " ".join(f"{k}={fields[k]}" for k in ("op", "kind", "userId", "chatId", "documentId") if fields.get(k))
        dead.append({"id": letter["id"], "summary": f"{target}: {fields.get('error', '')[:300]}"})
    return {"rows": rows, "dead": metrics["dead"], "dead_entries": dead}


def vectors_panel() -> dict[str, Any]:
    try:
        stats = get_vector_store().stats()
    except BackendError as exc:
        rows: list[tuple[str, Any]] = [("Error", str(exc)[:300])]
    else:
        dimension = stats["dimension"] if stats["dimension"] is not None else "— (empty)"
        rows = [("Vectors", stats["total"]), ("Dimension", dimension), ("Namespaces", len(stats["namespaces"]))]
    return {"rows": rows, "backends": backends()}


def outbox_counts() -> list[tuple[str, int]]:
    metrics = index_metrics()
    return [("Indexing outbox entries (not yet read)", metrics["lag"]), ("Dead letters", metrics["dead"])]


registry.register_page(registry.Page("search/", semantic_search, "mookti_search", "Semantic search", order=20))
registry.register_page(registry.Page("users/<str:user_id>/reindex/", reindex_user, "mookti_user_reindex"))
registry.register_page(registry.Page("operations/retry-dead-letters/", retry_dead, "mookti_retry_dead"))
registry.register_user_link(
    registry.UserLink(
        "Reindex",
        lambda site, user_id: reverse("admin:mookti_user_reindex", args=[user_id], current_app=site.name),
        "reindex-link",
        order=10,
    )
)
registry.register_user_link(
    registry.UserLink(
        "Search their data",
        lambda site, user_id: reverse("admin:mookti_search", current_app=site.name) + f"?user={user_id}",
        order=30,
    )
)
registry.register_operations_panel(registry.OperationsPanel("indexer", "admin/mookti/_indexer.html", indexer_panel))
registry.register_operations_panel(
    registry.OperationsPanel("vectors", "admin/mookti/_vectors.html", vectors_panel, order=110)
)
registry.register_counts("search", outbox_counts)
registry.register_user_deletion_note(
    "search", "Every vector of the user is removed from the search index (indexer, delete_user)."
)
