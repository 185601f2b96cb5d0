"""The admin's calls into the other parts: semantic search, the indexer, the vector store, gamification.

Kept in one module so the pages stay independent of how those parts spell their APIs. Imports
are inside the functions: the admin must load (and its entity pages work) without pulling in
an embedding model.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mookti.errors import Unavailable
from mookti.ids import now_us
from storage.search import keys as search_keys
from storage.staff.views.common import BadInput, when

SEARCH_KINDS = ("message", "document", "learning")
# Without a user, the search runs over the namespaces of at most this many of the newest users.
ALL_USERS_NAMESPACES = 50
ALL_USERS_CANDIDATES = 1000
REINDEX_CONSEQUENCES = [
    "The user's namespace is dropped and every message and document is embedded again from Redis, now.",
    "Search for this user is incomplete until it finishes; the indexer pauses this user meanwhile.",
    "Large histories take a while here: `manage.py reindex --user <id>` does the same with a progress bar.",
]


# --- semantic search ------------------------------------------------------------------------------
def offered_kinds() -> list[str]:
    """The kinds the search form offers: learning content only where shared namespaces are configured."""
    from storage.search.vectors import learning_namespaces

    return [k for k in SEARCH_KINDS if k != "learning" or learning_namespaces()]


def search(query: str, *, kinds: list[str], user_id: str | None, limit: int) -> dict[str, Any]:
    """Hits (best first) of one user, or of the newest users with vectors; see :mod:`storage.search.query`.

    Shared learning content is searched once, with the first user's call (it belongs to nobody).
    """
    from storage.search.query import search as run_search

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
        for group in run_search(target, query, kinds=wanted, top_k=limit)["results"]:
            owner = None if group["type"] == "learning" else target
            for hit in group["hits"]:
                hits.setdefault((owner or group.get("namespace") or "", hit["id"]), _hit_row(group, hit, owner))
    ranked = sorted(hits.values(), key=lambda h: h["score"], reverse=True)[:limit]
    note = ""
    if not user_id and len(targets) == ALL_USERS_NAMESPACES:
        note = f"Searched the {ALL_USERS_NAMESPACES} newest users with vectors; name a user to search anyone else."
    return {"hits": ranked, "searched": len(targets), "note": note}


def _users_with_vectors() -> list[str]:
    from mookti.redis import get_redis
    from storage import keys
    from storage.search.vectors import get_vector_store, user_namespace

    present = set(get_vector_store().stats()["namespaces"])
    newest = get_redis().zrevrange(keys.users(), 0, ALL_USERS_CANDIDATES - 1)
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
    from django.conf import settings

    from mookti.backends import BackendError
    from mookti.redis import get_redis
    from storage.search.vectors import get_vector_store

    configured = settings.MOOKTI_EMBEDDINGS
    model = configured.get("OPTIONS", {}).get("model") or configured.get("OPTIONS", {}).get("model_name") or ""
    meta = get_redis().hgetall(search_keys.vector_index_meta())
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


# --- indexer and vector store ---------------------------------------------------------------------
def indexer_status() -> dict[str, Any]:
    """Lag, pending, dead letters and consumers of the outbox group, and the newest dead letters."""
    from storage.search.indexer import dead_letters, index_metrics

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


def retry_dead_letters() -> str:
    from storage.search.indexer import retry_dead_letters as retry

    return f"{retry()} put back on the outbox"


def vector_stats() -> dict[str, Any]:
    from mookti.backends import BackendError
    from storage.search.vectors import get_vector_store

    try:
        stats = get_vector_store().stats()
    except BackendError as exc:
        return {"rows": [("Error", str(exc)[:300])]}
    return {
        "rows": [
            ("Vectors", stats["total"]),
            ("Dimension", stats["dimension"] if stats["dimension"] is not None else "— (empty)"),
            ("Namespaces", len(stats["namespaces"])),
        ]
    }


def reindex_user(user_id: str) -> str:
    from mookti.backends import BackendError
    from storage.search.indexer import rebuild_user

    try:
        done = rebuild_user(user_id)
    except (BackendError, TimeoutError) as exc:
        raise Unavailable(f"Reindexing failed, nothing else changed: {exc}") from exc
    return f"{done} messages and documents embedded again"


def reindex_size(user_id: str) -> int:
    """Messages and documents of the user (what a reindex embeds)."""
    from storage.search.management.commands.reindex import count_items

    return count_items([user_id])


# --- gamification --------------------------------------------------------------------------------
PANEL_DAYS = 14
MAX_STREAK = 100_000
MAX_REASON = 200


def gamification_panel(user_id: str) -> dict[str, Any] | None:
    """Streak, XP, achievements, the last two weeks, goals and progress (``gamification.managers.summary``)."""
    from gamification.managers import summary

    found = summary(user_id, days=PANEL_DAYS)
    days = found["stats"]["days"]
    busiest = max([d["xp"] for d in days] + [1])
    for day in days:
        day["bar"] = round(100 * day["xp"] / busiest)
    streak = found["streak"]
    streak["last"] = when(streak.get("lastActivity"))
    for group in found["goals"].values():
        for goal in group:
            _goal_display(goal)
    found["awarded"] = [a for a in found["achievements"] if a["awardedAt"]]
    for achievement in found["awarded"]:
        achievement["at"] = when(achievement["awardedAt"])
    for path in found["progress"]:
        path["updated"] = when(path.get("updatedAt"))
    return found


def _goal_display(goal: dict[str, Any]) -> dict[str, Any]:
    goal["percent"] = goal["progress"]
    goal["progress_text"] = f"{goal['current']} / {goal['target']}" if goal.get("target") else f"{goal['progress']}%"
    goal["due"] = when(goal.get("dueDate"))
    goal["completed"] = when(goal.get("completedAt"))
    return goal


def goals(user_id: str) -> list[dict[str, Any]]:
    """Every goal: active by due date, then expired, then completed."""
    from gamification.managers import goals as goal_manager

    return [_goal_display(g) for g in goal_manager.list(user_id, status="all", limit=500)]


def streak_state(user: dict[str, Any]) -> dict[str, Any]:
    from gamification.managers import streaks

    state = streaks.get(user)
    state["last"] = when(state.get("lastActivity"))
    return state


def parse_restore(user: dict[str, Any], form: Any) -> dict[str, Any]:
    """The restore form: streak length, the last active local day (default today) and a reason."""
    from gamification.days import day_start_us, local_date

    raw_current = str(form.get("current", "")).strip()
    try:
        current = int(raw_current)
    except ValueError:
        raise BadInput(f"current: “{raw_current[:20]}” is not a whole number of days.") from None
    if not 1 <= current <= MAX_STREAK:
        raise BadInput(f"current: a streak is 1 to {MAX_STREAK} days long.")
    tz_name = user.get("timezone") or "UTC"
    now = now_us()
    today = local_date(now, tz_name)
    raw_day = str(form.get("day", "")).strip()
    try:
        day = date.fromisoformat(raw_day) if raw_day else today
    except ValueError:
        raise BadInput(f"day: “{raw_day[:20]}” is not a date (YYYY-MM-DD).") from None
    if day > today:
        raise BadInput(f"day: {day} is in the future for this user (today is {today} in {tz_name}).")
    reason = str(form.get("reason", "")).strip()
    if len(reason) > MAX_REASON:
        raise BadInput(f"reason: at most {MAX_REASON} characters.")
    # noon of the local day (or now, today): unambiguous as a day, never in the future
    moment = min(day_start_us(day, tz_name) + 12 * 3600 * 1_000_000, now)
    return {"current": current, "day": day.isoformat(), "moment": moment, "reason": reason, "timezone": tz_name}


def restore_streak(user_id: str, form: dict[str, Any], staff: str) -> str:
    from gamification.managers import streaks

    view = streaks.restore(
        user_id, form["current"], form["moment"], restored_by=staff, reason=form["reason"] or "admin outage repair"
    )
    return f"{form['current']} days as of {form['day']}; now {view['current']} (longest {view['longest']})"
