"""The schema endpoint (apart from mookti.api.schema, which DRF imports while defining its views)."""

from __future__ import annotations

from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import permissions


class SchemaView(SpectacularAPIView):
    """``/api/schema/``: JSON unless YAML is asked for (``?format=yaml`` or ``Accept``)."""

    renderer_classes = [OpenApiJsonRenderer, OpenApiYamlRenderer]
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
