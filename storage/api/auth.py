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
from storage.managers.common import Credential
from storage.managers.users import TokenInfo

ACT_AS_HEADER = "HTTP_X_MOOKTI_USER"
BAD_HEADER = "Use 'Authorization: Bearer <token>'."
BAD_TOKEN = "Invalid, expired or revoked token."
NO_SUCH_USER = "X-Mookti-User names no user."


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
            raise exceptions.AuthenticationFailed(NO_SUCH_USER)
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
            raise exceptions.AuthenticationFailed(BAD_HEADER)
        principal = resolve_bearer(credential.strip(), request.META.get(ACT_AS_HEADER))
        if principal is None:
            raise exceptions.AuthenticationFailed(BAD_TOKEN)
        return principal, credential.strip()

    def authenticate_header(self, request) -> str:
        return self.keyword


class BearerCredential(Credential):
    """A bearer credential checked inside a hot read's first pipeline (``storage.api.hot``): the
    same checks and 401 answers as :class:`BearerAuthentication`, without a round trip of its own.

    :meth:`of` takes only what needs Redis to decide (a well-formed user token, or the service key
    with a valid ``X-Mookti-User``); anything else is left to DRF's authentication, which answers
    it without Redis (no or malformed header, the service key acting for nobody, a bad id).
    """

    def __init__(self, token: str, digest: str | None, act_as: str | None) -> None:
        self.token, self.digest, self.act_as = token, digest, act_as
        self.principal: Principal | None = None

    @classmethod
    def of(cls, meta: dict) -> BearerCredential | None:
        header = meta.get("HTTP_AUTHORIZATION", "")
        scheme, _, credential = header.partition(" ")
        token = credential.strip()
        if scheme != BearerAuthentication.keyword or not token:
            return None
        if is_service_key(token):
            act_as = meta.get(ACT_AS_HEADER)
            return cls(token, None, act_as) if act_as is not None and is_valid_id(act_as) else None
        digest = tokens.digest_of(token)
        return cls(token, digest, None) if digest else None

    def queue(self, pipe) -> None:
        if self.act_as is not None:
            users.queue_exists(pipe, self.act_as)
        else:
            tokens.queue_lookup(pipe, self.digest)

    def resolve(self, reply) -> str:
        if self.act_as is not None:
            if not reply:
                raise exceptions.AuthenticationFailed(NO_SUCH_USER)
            self.principal = Principal(self.act_as, is_service=True)
        else:
            info = tokens.info(self.digest, reply)
            if info is None:
                raise exceptions.AuthenticationFailed(BAD_TOKEN)
            self.principal = Principal(info.user_id, token=self.token, token_info=info)
        return self.principal.user_id
