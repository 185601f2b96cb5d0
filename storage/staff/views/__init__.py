"""Admin pages over Mookti's Redis data: URL patterns and the index page's "Mookti data" section.

The admin's own pages (users, chats, documents, operations, raw keys) are listed here; apps add
theirs through :mod:`storage.staff.registry`. All names live in the admin namespace
(``admin:mookti_users``, ``admin:mookti_user`` ...).
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path, reverse

from storage.staff import registry
from storage.staff.registry import Page
from storage.staff.views import actions, entities, keybrowser, operations
from storage.staff.views.common import page, render

APP_LABEL = "mookti"

OWN_PAGES = [
    Page("users/", entities.user_list, "mookti_users", "Users", order=10),
    Page("users/<str:user_id>/", entities.user_detail, "mookti_user"),
    Page("users/<str:user_id>/type/", actions.change_user_type, "mookti_user_type"),
    Page("users/<str:user_id>/delete/", actions.delete_user, "mookti_user_delete"),
    Page("chats/<str:chat_id>/", entities.chat_detail, "mookti_chat"),
    Page("chats/<str:chat_id>/delete/", actions.delete_chat, "mookti_chat_delete"),
    Page("documents/<str:document_id>/", entities.document_detail, "mookti_document"),
    Page("operations/", operations.operations, "mookti_operations", "Operations", order=30),
    Page("keys/", keybrowser.key_list, "mookti_keys", "Raw keys", order=40),
    Page("keys/view/", keybrowser.key_detail, "mookti_key"),
    Page("keys/delete/", keybrowser.key_delete, "mookti_key_delete"),
]


def all_pages() -> list[Page]:
    return [*OWN_PAGES, *registry.pages()]


def urlpatterns(site) -> list[URLPattern]:
    routes = [path(f"{APP_LABEL}/", page(site, overview), name="mookti_index")]
    return routes + [path(f"{APP_LABEL}/{p.route}", page(site, p.view), name=p.name) for p in all_pages()]


def app_entry(site) -> dict[str, Any]:
    """The index page's section for these pages, shaped like one of Django's apps."""
    listed = sorted((p for p in all_pages() if p.title), key=lambda p: p.order)
    models = [
        {
            "name": p.title,
            "object_name": p.name.removeprefix("mookti_"),
            "admin_url": reverse(f"admin:{p.name}", current_app=site.name),
            "add_url": None,
            "view_only": True,
            "perms": {"view": True},
        }
        for p in listed
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
