"""The staff admin: Django's admin site plus pages over Mookti's Redis data and vector store.

Nothing here is a Django model: the pages are plain views joined through ``get_urls()`` and
wrapped in ``admin_view()`` (staff only, CSRF protected, never cached), and the index lists
them as a "Mookti data" section next to Django's own apps. The views live in
:mod:`storage.staff.views`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern


class MooktiAdminSite(admin.AdminSite):
    site_header = "Mookti administration"
    site_title = "Mookti admin"
    index_title = "Site administration"

    def get_urls(self) -> list[URLPattern]:
        from storage.staff.views import urlpatterns

        # before Django's own: its catch-all view would shadow anything after it
        return urlpatterns(self) + super().get_urls()

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        from storage.staff.views import APP_LABEL, app_entry

        app_list = super().get_app_list(request, app_label)
        if app_label in (None, APP_LABEL) and self.has_permission(request):
            app_list.insert(0, app_entry(self))
        return app_list
