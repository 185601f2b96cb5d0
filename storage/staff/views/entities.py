"""The entity browser: users, a user's page, a chat's transcript, a document's versions.

Everything is read through the storage managers (the admin acts as the owner, so the managers'
ownership checks pass) and lists are read one page at a time from their ZSET indexes: no page
loads all keys of anything. Apps add panels and links to a user's page through
:mod:`storage.staff.registry`.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import urlencode

from mookti.errors import NotFound
from mookti.ids import is_valid_id
from storage.managers import chats, documents, inspection, messages, users, votes
from storage.managers.paging import PageRequest
from storage.managers.users import USER_TYPES
from storage.staff import registry
from storage.staff.views.common import (
    BadInput,
    choice_param,
    id_param,
    int_param,
    load_user,
    optional_id,
    pretty_json,
    render,
    when,
)
from storage.staff.views.parts import render_message

USERS_PER_PAGE = 25
CHATS_PER_PAGE = 20
DOCUMENTS_PER_PAGE = 20
MESSAGES_PER_PAGE = 50
MAX_DIFF_LINES = 200


def raw_keys_url(site, hash_tag: str) -> str:
    """The raw key browser on every key that carries ``{hash_tag}`` (an aggregate's keys share it)."""
    query = urlencode({"pattern": f"*{{{hash_tag}}}*"})
    return reverse("admin:mookti_keys", current_app=site.name) + "?" + query


def _user_row(user: dict[str, Any]) -> dict[str, Any]:
    return {**user, "created": when(user["createdAt"])}


def _chat_row(chat: dict[str, Any]) -> dict[str, Any]:
    return {**chat, "created": when(chat["createdAt"]), "last": when(chat["lastMessageAt"])}


def user_list(request: HttpRequest, site) -> HttpResponse:
    """Users newest first, filtered by type, or the one user an email address or id names."""
    query = request.GET.get("q", "").strip()
    user_type = choice_param(request.GET.get("type"), "type", USER_TYPES)
    page_number = int_param(request, "page", 1, 1, 1_000_000)
    if query:
        if "@" in query or query.startswith("guest-"):
            found = users.get_by_email(query)
        elif is_valid_id(query):
            found = users.get(query)
        else:
            raise BadInput("Search takes an email address or a user id.")
        rows, total = ([found] if found else []), (1 if found else 0)
    else:
        rows, total = users.list(user_type=user_type, offset=(page_number - 1) * USERS_PER_PAGE, limit=USERS_PER_PAGE)
    pages = max(1, -(-total // USERS_PER_PAGE))
    context = {
        "title": "Users",
        "query": query,
        "user_type": user_type or "",
        "user_types": USER_TYPES,
        "rows": [_user_row(u) for u in rows],
        "total": total,
        "page_number": page_number,
        "pages": pages,
        "previous_page": page_number - 1 if page_number > 1 and not query else None,
        "next_page": page_number + 1 if page_number < pages and not query else None,
    }
    return render(request, site, "admin/mookti/user_list.html", context)


def user_detail(request: HttpRequest, site, user_id: str) -> HttpResponse:
    """Profile, chats and documents (one page each), the apps' panels, and the user's actions."""
    user = load_user(user_id)
    chats_before = optional_id(request, "chats_before", "chat")
    documents_before = optional_id(request, "documents_before", "document")
    chat_rows, more_chats = chats.list_for_user(user_id, PageRequest(limit=CHATS_PER_PAGE, ending_before=chats_before))
    document_rows, more_documents = documents.list_for_user(
        user_id, PageRequest(limit=DOCUMENTS_PER_PAGE, ending_before=documents_before)
    )
    context = {
        "title": user["email"] or user["id"],
        "subject": _user_row(user),
        "preferences": pretty_json(user["preferences"]),
        "counts": inspection.user_counts(user_id),
        "messages_24h": messages.count_recent(user_id, 24),
        "chats": [_chat_row(c) for c in chat_rows],
        "next_chats": chat_rows[-1]["id"] if more_chats and chat_rows else None,
        "documents": [{**d, "created": when(d["createdAt"]), "updated": when(d["updatedAt"])} for d in document_rows],
        "next_documents": document_rows[-1]["id"] if more_documents and document_rows else None,
        "user_types": [t for t in USER_TYPES if t != user["type"]],
        "panels": user_panels(user),
        "links": [
            {"title": link.title, "url": link.url(site, user_id), "id": link.element_id}
            for link in registry.user_links()
        ],
        "raw_keys_url": raw_keys_url(site, user_id),
    }
    return render(request, site, "admin/mookti/user_detail.html", context)


def user_panels(user: dict[str, Any]) -> list[dict[str, Any]]:
    """The registered panels that have something to show for this user, with their context."""
    found = ((panel, panel.context(user)) for panel in registry.user_panels())
    return [
        {"name": panel.name, "template": panel.template, "context": context}
        for panel, context in found
        if context is not None
    ]


def load_chat(chat_id: str) -> dict[str, Any]:
    chat = chats.get(id_param(chat_id, "chat"))
    if chat is None:
        raise NotFound("chat")
    return chat


def chat_detail(request: HttpRequest, site, chat_id: str) -> HttpResponse:
    """The transcript (50 messages a page, oldest first) with roles, rendered parts and votes."""
    chat = load_chat(chat_id)
    owner_id = chat["userId"]
    after = optional_id(request, "after", "message")
    focus = optional_id(request, "message", "message")
    if focus:
        after = inspection.message_page_cursor(chat_id, focus, MESSAGES_PER_PAGE)
    page = PageRequest(limit=MESSAGES_PER_PAGE, starting_after=after, order="asc")
    rows, more = messages.list(owner_id, chat_id, page)
    chat_votes = {v["messageId"]: ("up" if v["isUpvoted"] else "down") for v in votes.list(owner_id, chat_id)}
    transcript = [
        {
            **m,
            "created": when(m["createdAt"]),
            "rendered": render_message(m),
            "vote": chat_votes.get(m["id"]),
            "attachments_json": pretty_json(m["attachments"]) if m["attachments"] else "",
        }
        for m in rows
    ]
    context = {
        "title": chat["title"] or chat_id,
        "chat": _chat_row(chat),
        "owner": users.get(owner_id),
        "message_count": inspection.chat_message_count(chat_id),
        "raw_keys_url": raw_keys_url(site, chat_id),
        "transcript": transcript,
        "votes": chat_votes,
        "after": after,
        "focus": focus,
        "next_after": rows[-1]["id"] if more and rows else None,
    }
    return render(request, site, "admin/mookti/chat_detail.html", context)


def load_document_owner(document_id: str) -> str:
    owner = inspection.document_owner(id_param(document_id, "document"))
    if owner is None:
        raise NotFound("document")
    return owner


def _diff(before: str, after: str) -> str:
    lines = list(
        difflib.unified_diff(before.splitlines(), after.splitlines(), "previous", "this version", n=1, lineterm="")
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more lines"]
    return "\n".join(lines)


def document_detail(request: HttpRequest, site, document_id: str) -> HttpResponse:
    """Every version (newest first, with what changed from the one before) and its suggestions."""
    owner_id = load_document_owner(document_id)
    versions = documents.versions(owner_id, document_id)
    suggestions = documents.suggestions(owner_id, document_id)
    by_version: dict[int, list[dict[str, Any]]] = {}
    for suggestion in suggestions:
        suggestion["created"] = when(suggestion["createdAt"])
        by_version.setdefault(suggestion["documentCreatedAt"], []).append(suggestion)
    rows = []
    previous = ""
    for index, version in enumerate(versions):
        content = version["content"] or ""
        rows.append(
            {
                **version,
                "number": index + 1,
                "created": when(version["createdAt"]),
                "diff": _diff(previous, content) if index else "",
                "suggestions": by_version.get(version["createdAt"], []),
            }
        )
        previous = content
    rows.reverse()
    latest = rows[0] if rows else None
    context = {
        "title": (latest["title"] if latest else "") or document_id,
        "document_id": document_id,
        "owner": users.get(owner_id),
        "owner_id": owner_id,
        "versions": rows,
        "suggestion_count": len(suggestions),
        "raw_keys_url": raw_keys_url(site, document_id),
    }
    return render(request, site, "admin/mookti/document_detail.html", context)
