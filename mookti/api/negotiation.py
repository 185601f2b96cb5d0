"""Content negotiation of the API (its own module: DRF imports it while defining ``APIView``)."""

from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation


class JSONFallbackNegotiation(DefaultContentNegotiation):
    """The view's first renderer when the client's ``Accept`` names none of them: an API answers
    JSON (and errors in the one JSON body) whatever ``Accept`` says, never a 406 or an HTML page."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except (exceptions.NotAcceptable, Http404):
            return renderers[0], renderers[0].media_type
