"""The admin app config that makes :class:`storage.staff.site.MooktiAdminSite` the default ``admin.site``.

Listed in ``INSTALLED_APPS`` instead of ``django.contrib.admin``; every ``admin.register`` (Django's
auth User and Group included) lands on the Mookti site, which adds the Redis pages to it.
"""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.module_loading import autodiscover_modules


class StaffConfig(AppConfig):
    """The staff pages over Redis and the vector store (templates and static files live here)."""

    name = "storage.staff"
    label = "staff"
    default = True

    def ready(self) -> None:
        # every installed app's ``staff`` module registers its pages and panels (storage.staff.registry)
        autodiscover_modules("staff")


class MooktiAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "storage.staff.site.MooktiAdminSite"
