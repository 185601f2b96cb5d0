"""The admin app config that makes :class:`storage.admin.MooktiAdminSite` the default ``admin.site``.

Listed in ``INSTALLED_APPS`` instead of ``django.contrib.admin``; every ``admin.register`` (Django's
auth User and Group included) lands on the Mookti site, which adds the Redis pages to it.
"""

from django.contrib.admin.apps import AdminConfig


class MooktiAdminConfig(AdminConfig):
    default_site = "storage.admin.MooktiAdminSite"
