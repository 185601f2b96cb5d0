"""Admin pages over Mookti's Redis data: URL patterns and the index page's "Mookti data" section.

All names live in the admin namespace (``admin:mookti_users``, ``admin:mookti_user`` ...).
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path, reverse

from storage.staff.views import actions, entities, keybrowser, operations, search
from storage.staff.views.common import page, render

APP_LABEL = "mookti"

# (url name, title, index object name) of the pages listed on the admin index
INDEX_PAGES = [
    ("mookti_users", "Users", "users"),
    ("mookti_search", "Semantic search", "search"),
    ("mookti_operations", "Operations", "operations"),
    ("mookti_keys", "Raw keys", "keys"),
]


def urlpatterns(site) -> list[URLPattern]:
    routes = [
        ("", overview, "mookti_index"),
        ("users/", entities.user_list, "mookti_users"),
        ("users/<str:user_id>/", entities.user_detail, "mookti_user"),
        ("users/<str:user_id>/goals/", entities.user_goals, "mookti_user_goals"),
        ("users/<str:user_id>/type/", actions.change_user_type, "mookti_user_type"),
        ("users/<str:user_id>/delete/", actions.delete_user, "mookti_user_delete"),
        ("users/<str:user_id>/reindex/", actions.reindex_user, "mookti_user_reindex"),
        ("users/<str:user_id>/restore-streak/", actions.restore_streak, "mookti_user_restore_streak"),
        ("chats/<str:chat_id>/", entities.chat_detail, "mookti_chat"),
        ("chats/<str:chat_id>/delete/", actions.delete_chat, "mookti_chat_delete"),
        ("documents/<str:document_id>/", entities.document_detail, "mookti_document"),
        ("search/", search.semantic_search, "mookti_search"),
        ("operations/", operations.operations, "mookti_operations"),
        ("operations/retry-dead-letters/", operations.retry_dead_letters, "mookti_retry_dead"),
        ("keys/", keybrowser.key_list, "mookti_keys"),
        ("keys/view/", keybrowser.key_detail, "mookti_key"),
        ("keys/delete/", keybrowser.key_delete, "mookti_key_delete"),
    ]
    return [path(f"{APP_LABEL}/{route}", page(site, view), name=name) for route, view, name in routes]


def app_entry(site) -> dict[str, Any]:
    """The index page's section for these pages, shaped like one of Django's apps."""
    models = [
        {
            "name": title,
            "object_name": object_name,
            "admin_url": reverse(f"admin:{name}", current_app=site.name),
            "add_url": None,
            "view_only": True,
            "perms": {"view": True},
        }
        for name, title, object_name in INDEX_PAGES
    ]
    return {
        "name": "Mookti data",
        "app_label": APP_LABEL,
        "app_url": reverse("admin:mookti_index", current_app=site.name),
        "has_module_perms": True,
        "models": models,
    }


def overview(request, site):
    """The section's own index, drawn by Django's app index template."""
    context = {"title": "Mookti data", "subtitle": None, "app_list": [app_entry(site)], "app_label": APP_LABEL}
    return render(request, site, "admin/app_index.html", context)
