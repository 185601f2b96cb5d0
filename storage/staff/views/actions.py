"""Staff actions. Each one is a GET that shows a confirmation page and a POST (admin CSRF) that acts.

Every action that runs is written to the audit trail with the staff member's name.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from storage.managers import chats, users
from storage.managers.users import USER_TYPES
from storage.staff.views import integrations
from storage.staff.views.common import BadInput, audit, choice_param, confirm_page, confirmed, done, render
from storage.staff.views.entities import chat_message_count, load_chat, load_user, user_counts


def _user_url(site, user_id: str) -> str:
    return reverse("admin:mookti_user", args=[user_id], current_app=site.name)


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
        return done(request, f"{user['email']} is now a {new_type} user.", _user_url(site, user_id))
    return confirm_page(
        request,
        site,
        title="Change user type",
        question=f"Change {user['email']} from {user['type']} to {new_type}?",
        facts=[("User", user["email"]), ("Id", user_id), ("Current type", user["type"]), ("New type", new_type)],
        consequences=["The daily message limit and the features of the new type apply at once."],
        hidden={"type": new_type},
        cancel=_user_url(site, user_id),
    )


def delete_chat(request: HttpRequest, site, chat_id: str) -> HttpResponse:
    chat = load_chat(chat_id)
    owner_id = chat["userId"]
    if confirmed(request):
        chats.delete(owner_id, chat_id)
        audit(request, "chat.delete", f"chat:{chat_id}", f"“{chat['title']}” of user {owner_id}", deletion=True)
        return done(request, f"Deleted the chat “{chat['title']}”.", _user_url(site, owner_id))
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
            ("Messages", chat_message_count(chat_id)),
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
    counts = user_counts(user_id)
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
            "Streak, goals, stats, progress and XP are deleted.",
            "Every vector of the user is removed from the search index (indexer, delete_user).",
            "The email address becomes free again.",
        ],
        cancel=_user_url(site, user_id),
        danger=True,
    )


def reindex_user(request: HttpRequest, site, user_id: str) -> HttpResponse:
    user = load_user(user_id)
    if confirmed(request):
        summary = integrations.reindex_user(user_id)
        audit(request, "user.reindex", f"user:{user_id}", f"{user['email']}: {summary}")
        return done(request, f"Reindexing {user['email']}: {summary}.", _user_url(site, user_id))
    counts = user_counts(user_id)
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
            ("Messages and documents to embed", integrations.reindex_size(user_id)),
        ],
        consequences=integrations.REINDEX_CONSEQUENCES,
        button="Reindex",
        cancel=_user_url(site, user_id),
    )


def restore_streak(request: HttpRequest, site, user_id: str) -> HttpResponse:
    """Outage repair: the form (current streak shown), then a confirmation, then the restore."""
    user = load_user(user_id)
    source = request.POST if request.method == "POST" else request.GET
    state = integrations.streak_state(user)
    if "current" not in source:
        context = {
            "title": "Restore streak",
            "subject": user,
            "streak": state,
            "suggested": max(state["longest"] if not state["alive"] else state["current"], 1),
            "back": _user_url(site, user_id),
        }
        return render(request, site, "admin/mookti/restore_streak.html", context)
    form = integrations.parse_restore(user, source)
    if confirmed(request):
        summary = integrations.restore_streak(user_id, form, request.user.get_username())
        audit(request, "user.restore_streak", f"user:{user_id}", f"{user['email']}: {summary}; {form['reason']}")
        return done(request, f"Streak of {user['email']} restored: {summary}.", _user_url(site, user_id))
    return confirm_page(
        request,
        site,
        title="Restore streak",
        question=f"Restore the streak of {user['email']} to {form['current']} days as of {form['day']}?",
        facts=[
            ("User", user["email"]),
            ("Timezone", form["timezone"]),
            ("Streak now", f"{state['current']} (longest {state['longest']}, last active {state['lastActivityDate']})"),
            ("Restore to", f"{form['current']} days"),
            ("Last active day", form["day"]),
            ("Reason", form["reason"] or "—"),
        ],
        consequences=[
            "Activity recorded after that day is replayed on top, so the learner continues from there.",
            "The longest streak never decreases; the learner's apps get a streak.restored event.",
        ],
        hidden={"current": str(form["current"]), "day": form["day"], "reason": form["reason"]},
        button="Restore streak",
        cancel=_user_url(site, user_id),
    )
