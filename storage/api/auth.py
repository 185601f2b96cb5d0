"""API authentication: per-user bearer tokens and the webapp backend's service key.

``request.user`` becomes a :class:`Principal`. A token costs one Redis round trip; the
service key acting for ``X-Mookti-User`` costs one too (the user must exist).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.conf import settings
from rest_framework import authentication, exceptions

from mookti.ids import is_valid_id
from storage.managers import tokens, users
from storage.managers.users import TokenInfo

ACT_AS_HEADER = "HTTP_X_MOOKTI_USER"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (``user_id``), possibly through the service key."""

    user_id: str | None
    is_service: bool = False
    token: str | None = None
    token_info: TokenInfo | None = None  # for a user token: its digest and expiry

    is_authenticated = True
    is_staff = False

    @property
    def pk(self) -> str | None:
        return self.user_id


def is_service_key(candidate: str) -> bool:
    key = settings.MOOKTI_SERVICE_KEY
    return bool(key) and hmac.compare_digest(candidate.encode(), key.encode())


def resolve_bearer(token: str, act_as: str | None = None) -> Principal | None:
    """The principal for a bearer credential, or None if it is not valid (also used by websockets)."""
    if is_service_key(token):
        if act_as is None:
            return Principal(None, is_service=True)
        if not is_valid_id(act_as) or not users.exists(act_as):
            raise exceptions.AuthenticationFailed("X-Mookti-User names no user.")
        return Principal(act_as, is_service=True)
    info = tokens.lookup(token)
    return Principal(info.user_id, token=token, token_info=info) if info else None


class BearerAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, credential = header.partition(" ")
        if scheme != self.keyword or not credential.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        principal = resolve_bearer(credential.strip(), request.META.get(ACT_AS_HEADER))
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return principal, credential.strip()

    def authenticate_header(self, request) -> str:
        return self.keyword
