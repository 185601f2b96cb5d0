from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from mookti.api.schema_view import SchemaView
from mookti.health import health
from storage.realtime.tickets import TicketView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health/", health, name="health"),
    path("api/storage/", include("storage.api.urls")),
    path("api/gamification/", include("gamification.urls")),
    path("api/realtime/ticket/", TicketView.as_view(), name="realtime-ticket"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
