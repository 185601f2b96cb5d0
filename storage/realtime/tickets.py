"""Who a websocket belongs to: single-use tickets and bearer subprotocols.

A browser cannot set an Authorization header on a websocket, and a token in the URL ends up
in access logs. So a client either asks ``POST /api/realtime/ticket/`` (as the user: their
token, or the webapp's service key acting for them) for a ticket that is valid once for a
few seconds, or offers its token as the subprotocol pair ``["mookti.bearer", "<token>"]``.
The tickets and the credential checks live in :mod:`storage.realtime.managers`.
"""

from __future__ import annotations

import itertools

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storage.api.permissions import IsMooktiUser
from storage.realtime.managers import tickets

BEARER_SUBPROTOCOL = "mookti.bearer"


def bearer_from_subprotocols(subprotocols: list[str]) -> str | None:
    """The token of the pair ``["mookti.bearer", "<token>"]``, if offered."""
    for offered, following in itertools.pairwise(subprotocols):
        if offered == BEARER_SUBPROTOCOL:
            return following
    return None


class TicketView(APIView):
    """``POST /api/realtime/ticket/``: a single-use websocket ticket for the calling user."""

    permission_classes = [IsMooktiUser]

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "RealtimeTicket",
                {"ticket": serializers.CharField(), "expiresIn": serializers.IntegerField(help_text="seconds")},
            )
        },
        summary="Ticket for /ws/events/?ticket=... (single use, expires within 60 s)",
        operation_id="createRealtimeTicket",
    )
    def post(self, request: Request) -> Response:
        principal = request.user
        return Response(tickets.issue(principal.user_id, principal.token_info), status=status.HTTP_200_OK)
