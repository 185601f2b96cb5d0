"""Live updates' data: single-use websocket tickets (this app's own keys) and the credential
checks of an open socket (through storage's managers; the event stream through :mod:`mookti.events`).

Tickets are stored by their SHA-256 only and redeemed with GETDEL (single use). A ticket
remembers the token it was issued to (its digest and expiry), so a socket opened with it
closes when that token is revoked or expires, exactly like one opened with the token itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from django.conf import settings

from mookti import events
from mookti.redis import get_async_redis, get_redis
from storage.managers import tokens, users
from storage.managers.users import MAX_TOKEN_LENGTH, TokenInfo
from storage.realtime import keys

TICKET_PREFIX = "wst_"


@dataclass(frozen=True)
class Identity:
    """The user a socket acts for and the token behind it (None: a ticket the service key asked for).

    ``expires_at`` is the token's expiry (µs since the epoch), so the socket closes then without
    asking Redis; None when there is no token.
    """

    user_id: str
    token_digest: str | None = None
    expires_at: int | None = None

    def expired(self) -> bool:
        return self.expires_at is not None and time.time() * 1_000_000 >= self.expires_at


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TicketManager:
    """``ws-ticket:{sha256}``: the only code that touches ticket keys."""

    def issue(self, user_id: str, token: TokenInfo | None) -> dict[str, object]:
        """A single-use ticket for ``user_id``, valid for ``MOOKTI_WS_TICKET_TTL`` seconds."""
        ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
        ttl = settings.MOOKTI_WS_TICKET_TTL
        value = {
            "userId": user_id,
            "token": token.digest if token else None,
            "expiresAt": token.expires_at if token else None,
        }
        get_redis().set(keys.ws_ticket(_digest(ticket)), json.dumps(value), ex=ttl)
        return {"ticket": ticket, "expiresIn": ttl}

    async def redeem(self, ticket: str) -> Identity | None:
        """The identity a ticket was issued for, once; None if unknown, expired or already used."""
        if not ticket.startswith(TICKET_PREFIX) or len(ticket) > MAX_TOKEN_LENGTH:
            return None
        raw = await get_async_redis().getdel(keys.ws_ticket(_digest(ticket)))
        if not raw:
            return None
        value = json.loads(raw)
        identity = Identity(value["userId"], value.get("token"), value.get("expiresAt"))
        return identity if await is_valid(identity) else None


async def identity_for_token(token: str) -> Identity | None:
    """A user's API token (never the service key: a socket always belongs to one user)."""
    info = await tokens.alookup(token)
    return Identity(info.user_id, info.digest, info.expires_at) if info else None


async def is_valid(identity: Identity) -> bool:
    """Still allowed: the token was neither revoked nor expired (service tickets: the user exists)."""
    if identity.expired():
        return False
    if identity.token_digest is None:
        return await users.aexists(identity.user_id)
    return await tokens.ais_live(identity.token_digest, identity.user_id)


async def recheck(identity: Identity, after: str) -> tuple[bool, bool]:
    """(is the identity still valid, are there events after ``after``): the periodic safety net
    for a revocation or an event whose poke never came."""
    return await asyncio.gather(is_valid(identity), events.has_newer(identity.user_id, after))


tickets = TicketManager()
