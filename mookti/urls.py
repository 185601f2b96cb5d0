from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from mookti.api.schema_view import SchemaView
from mookti.health import health, live, ready
from storage.realtime.tickets import TicketView
from storage.search.views import SearchView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health/", health, name="health"),
    path("api/health/live", live, name="health-live"),
    path("api/health/ready", ready, name="health-ready"),
    # Semantic search sits under /api/storage/ but is its own app (storage.api does not import it).
    re_path(r"^api/storage/search/?$", SearchView.as_view(), name="search"),
    path("api/storage/", include("storage.api.urls")),
    path("api/gamification/", include("gamification.urls")),
    path("api/realtime/ticket/", TicketView.as_view(), name="realtime-ticket"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]
