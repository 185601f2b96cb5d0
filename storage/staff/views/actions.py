"""The admin's own staff actions (apps register theirs).

Each one is a GET that shows a confirmation page and a POST (admin CSRF) that acts.

Every action that runs is written to the audit trail with the staff member's name.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from storage.managers import chats, inspection, users
from storage.managers.users import USER_TYPES
from storage.staff import registry
from storage.staff.audit import audit
from storage.staff.views.common import BadInput, choice_param, confirm_page, confirmed, done, load_user, user_url
from storage.staff.views.entities import load_chat


def change_user_type(request: HttpRequest, site, user_id: str) -> HttpResponse:
    user = load_user(user_id)
    source = request.POST if request.method == "POST" else request.GET
    new_type = choice_param(source.get("type"), "type", USER_TYPES)
    if new_type is None:
        raise BadInput(f"type: choose one of {', '.join(USER_TYPES)}.")
    if new_type == user["type"]:
        raise BadInput(f"The user is already of type {new_type}.")
    if confirmed(request):
        users.update(user_id, {"type": new_type})
        audit(request, "user.change_type", f"user:{user_id}", f"{user['type']} -> {new_type} ({user['email']})")
        return done(request, f"{user['email']} is now a {new_type} user.", user_url(site, user_id))
    return confirm_page(
        request,
        site,
        title="Change user type",
        question=f"Change {user['email']} from {user['type']} to {new_type}?",
        facts=[("User", user["email"]), ("Id", user_id), ("Current type", user["type"]), ("New type", new_type)],
        consequences=["The daily message limit and the features of the new type apply at once."],
        hidden={"type": new_type},
        cancel=user_url(site, user_id),
    )


def delete_chat(request: HttpRequest, site, chat_id: str) -> HttpResponse:
    chat = load_chat(chat_id)
    owner_id = chat["userId"]
    if confirmed(request):
        chats.delete(owner_id, chat_id)
        audit(request, "chat.delete", f"chat:{chat_id}", f"“{chat['title']}” of user {owner_id}", deletion=True)
        return done(request, f"Deleted the chat “{chat['title']}”.", user_url(site, owner_id))
    owner = users.get(owner_id)
    return confirm_page(
        request,
        site,
        title="Delete chat",
        question=f"Delete the chat “{chat['title']}” with all its messages?",
        facts=[
            ("Chat", chat["title"]),
            ("Id", chat_id),
            ("Owner", owner["email"] if owner else owner_id),
            ("Messages", inspection.chat_message_count(chat_id)),
            ("Visibility", chat["visibility"]),
        ],
        consequences=[
            "Its messages, votes and resumable stream ids are removed.",
            "Its vectors are removed from the search index by the indexer.",
            "The owner's connected apps are told the chat is gone.",
        ],
        cancel=reverse("admin:mookti_chat", args=[chat_id], current_app=site.name),
        danger=True,
    )


def delete_user(request: HttpRequest, site, user_id: str) -> HttpResponse:
    user = load_user(user_id)
    if confirmed(request):
        users.delete(user_id)
        audit(request, "user.delete", f"user:{user_id}", user["email"], deletion=True)
        return done(
            request,
            f"Deleted {user['email']} with all their data; their vectors are being removed by the indexer.",
            reverse("admin:mookti_users", current_app=site.name),
        )
    counts = inspection.user_counts(user_id)
    return confirm_page(
        request,
        site,
        title="Delete user",
        question=f"Delete {user['email']} and everything they own? This cannot be undone.",
        facts=[
            ("User", user["email"]),
            ("Id", user_id),
            ("Type", user["type"]),
            ("Chats", counts["chats"]),
            ("Documents", counts["documents"]),
            ("API tokens", counts["tokens"]),
        ],
        consequences=[
            "Chats, messages, votes, documents, suggestions and API tokens are deleted.",
            *registry.user_deletion_notes(),
            "The email address becomes free again.",
        ],
        cancel=user_url(site, user_id),
        danger=True,
    )
