"""The semantic search page: what staff would find, with scores, snippets and links to the source."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from mookti.errors import DomainError
from storage.managers import users
from storage.staff.views import integrations
from storage.staff.views.common import BadInput, id_param, int_param, render, when

MAX_QUERY = 500


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


def semantic_search(request: HttpRequest, site) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    if len(query) > MAX_QUERY:
        raise BadInput(f"q: at most {MAX_QUERY} characters.")
    chosen = request.GET.getlist("kind")
    unknown = [k for k in chosen if k not in integrations.SEARCH_KINDS]
    if unknown:
        raise BadInput(f"kind: “{unknown[0][:40]}” is not one of {', '.join(integrations.SEARCH_KINDS)}.")
    offered = integrations.offered_kinds()
    kinds = chosen or offered
    user_field = request.GET.get("user", "")
    user_id = resolve_user(user_field)
    limit = int_param(request, "limit", 10, 1, 50)
    found, error, status = None, "", 200
    if query:
        try:
            found = integrations.search(query, kinds=kinds, user_id=user_id, limit=limit)
        except DomainError as exc:  # Invalid (400) or Unavailable (503): the page says so
            error, status = exc.message, exc.status_code
    hits = found["hits"] if found else None
    if hits:
        owners = {u["id"]: u["email"] for u in users.get_many(sorted({h["userId"] for h in hits if h["userId"]})) if u}
        for hit in hits:
            hit["created"] = when(hit.get("createdAt"))
            hit["url"] = source_url(site, hit)
            hit["userLabel"] = owners.get(hit["userId"], hit["userId"])
            hit["user_url"] = (
                reverse("admin:mookti_user", args=[hit["userId"]], current_app=site.name) if hit["userId"] else None
            )
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
        "backends": integrations.backends(),
    }
    return render(request, site, "admin/mookti/search.html", context, status=status)


def source_url(site, hit: dict) -> str | None:
    if hit.get("chatId"):
        url = reverse("admin:mookti_chat", args=[hit["chatId"]], current_app=site.name)
        if hit.get("messageId"):
            return f"{url}?message={hit['messageId']}#message-{hit['messageId']}"
        return url
    if hit.get("documentId"):
        return reverse("admin:mookti_document", args=[hit["documentId"]], current_app=site.name)
    return None
