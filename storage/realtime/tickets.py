"""Who a websocket belongs to: single-use tickets, bearer subprotocols, and re-checks.

A browser cannot set an Authorization header on a websocket, and a token in the URL ends up
in access logs. So a client either asks ``POST /api/realtime/ticket/`` (as the user: their
token, or the webapp's service key acting for them) for a ticket that is valid once for a
few seconds, or offers its token as the subprotocol pair ``["mookti.bearer", "<token>"]``.

Tickets are stored by their SHA-256 only and redeemed with GETDEL (single use). A ticket
remembers the token it was issued to, so a socket opened with it closes when that token is
revoked, exactly like one opened with the token itself.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mookti import keys
from mookti.redis import get_async_redis, get_redis
from storage import keys as storage_keys
from storage.api.auth import Principal
from storage.api.permissions import IsMooktiUser
from storage.managers import tokens
from storage.realtime import keys as realtime_keys

BEARER_SUBPROTOCOL = "mookti.bearer"
TICKET_PREFIX = "wst_"
MAX_CREDENTIAL_LENGTH = 128


@dataclass(frozen=True)
class Identity:
    """The user a socket acts for, and the token behind it (None: issued via the service key)."""

    user_id: str
    token_digest: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- tickets -------------------------------------------------------------------------------------
def issue_ticket(principal: Principal) -> dict[str, object]:
    """A single-use ticket for ``principal``'s user, valid for ``MOOKTI_WS_TICKET_TTL`` seconds."""
    ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
    ttl = settings.MOOKTI_WS_TICKET_TTL
    value = {"userId": principal.user_id, "token": tokens.digest(principal.token) if principal.token else None}
    get_redis().set(realtime_keys.ws_ticket(_digest(ticket)), json.dumps(value), ex=ttl)
    return {"ticket": ticket, "expiresIn": ttl}


async def redeem_ticket(ticket: str) -> Identity | None:
    """The identity a ticket was issued for, once; None if unknown, expired or already used."""
    if not ticket.startswith(TICKET_PREFIX) or len(ticket) > MAX_CREDENTIAL_LENGTH:
        return None
    raw = await get_async_redis().getdel(realtime_keys.ws_ticket(_digest(ticket)))
    if not raw:
        return None
    value = json.loads(raw)
    identity = Identity(value["userId"], value.get("token"))
    return identity if await is_valid(identity) else None


# --- bearer tokens -------------------------------------------------------------------------------
def bearer_from_subprotocols(subprotocols: list[str]) -> str | None:
    """The token of the pair ``["mookti.bearer", "<token>"]``, if offered."""
    for offered, following in itertools.pairwise(subprotocols):
        if offered == BEARER_SUBPROTOCOL:
            return following
    return None


async def identity_for_token(token: str) -> Identity | None:
    """A user's API token (never the service key: a socket always belongs to one user)."""
    if len(token) > MAX_CREDENTIAL_LENGTH:
        return None
    digest = tokens.digest(token)
    user_id = await get_async_redis().hget(storage_keys.token(digest), "userId")
    return Identity(user_id, digest) if user_id else None


def _queue_validity(pipe: Any, identity: Identity) -> None:
    if identity.token_digest is None:
        pipe.exists(storage_keys.user(identity.user_id))
    else:
        pipe.hget(storage_keys.token(identity.token_digest), "userId")


def _is_valid_reply(identity: Identity, reply: Any) -> bool:
    return bool(reply) if identity.token_digest is None else reply == identity.user_id


async def is_valid(identity: Identity) -> bool:
    """Still allowed: the token was not revoked or expired (service tickets: the user exists)."""
    async with get_async_redis().pipeline(transaction=False) as pipe:
        _queue_validity(pipe, identity)
        (reply,) = await pipe.execute()
    return _is_valid_reply(identity, reply)


async def heartbeat_check(identity: Identity, after: str) -> tuple[bool, bool]:
    """One round trip: (is the identity still valid, are there events after ``after``)."""
    async with get_async_redis().pipeline(transaction=False) as pipe:
        _queue_validity(pipe, identity)
        pipe.xrange(keys.events(identity.user_id), min=f"({after}", max="+", count=1)
        validity, newer = await pipe.execute()
    return _is_valid_reply(identity, validity), bool(newer)


# --- HTTP ----------------------------------------------------------------------------------------
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
        return Response(issue_ticket(request.user), status=status.HTTP_200_OK)
