"""Users: ``user:{uid}`` HASH, unique email claim, admin indexes, API tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password

from mookti import events, outbox
from mookti.errors import Conflict, NotFound
from mookti.ids import new_id, now_us
from mookti.redis import KeyExists, Write, get_async_redis, get_redis, pipeline
from storage import keys, signals
from storage.entities import Token, User
from storage.managers.revisions import Revision, touch_user

USER_TYPES = ("free", "basic", "pro")
# Profile fields an update may change (``type`` only through the service key).
PROFILE_FIELDS = ("name", "timezone", "type", "preferences")
TOKEN_PREFIX = "mkt_"
GUEST_ATTEMPTS = 5
MAX_TOKEN_LENGTH = 128
TOKEN_FIELDS = ("userId", "expiresAt")


def normalize_email(email: str) -> str:
    return email.strip().lower()


decode_user = User.view


class UserManager:
    def create(
        self,
        email: str,
        password: str | None = None,
        *,
        name: str = "",
        user_type: str = "free",
        timezone: str = "UTC",
        preferences: dict[str, Any] | None = None,
        user_id: str | None = None,
        created_at: int | None = None,
        is_guest: bool = False,
        password_hash: str | None = None,
    ) -> dict[str, Any]:
        """Claim the email (SET NX), then the hash (if the id is free) and its indexes as one write.

        Inside an ``Idempotency-Key`` scope a replay finds the email claimed for the same id and
        the write's guard set: it answers with the user the first attempt stored."""
        client = get_redis()
        email = normalize_email(email)
        user_id = user_id or new_id()
        created_at = created_at or now_us()
        email_taken = Conflict("A user with this email already exists.", {"email": ["already registered"]})
        claimed = bool(client.set(keys.user_email(email), user_id, nx=True))
        if not claimed and client.get(keys.user_email(email)) != user_id:
            raise email_taken
        user = User(
            id=user_id,
            email=email,
            name=name,
            type=user_type,
            isGuest=is_guest,
            timezone=timezone,
            preferences=preferences or {},
            createdAt=created_at,
            password=password_hash or (make_password(password) if password else ""),
        )
        write = Write(absent=(keys.user(user_id),))
        write.step(lambda p: p.hset(keys.user(user_id), mapping=user.encode()))
        write.step(lambda p: p.zadd(keys.users(), {user_id: created_at}))
        write.step(lambda p: p.zadd(keys.users_by_type(user_type), {user_id: created_at}))
        try:
            write.execute()
        except KeyExists:
            if not claimed:  # the email was this id's already: the user exists
                raise email_taken from None
            client.delete(keys.user_email(email))
            raise Conflict("A user with this id already exists.", {"id": ["already exists"]}) from None
        if write.applied_before:  # a replay: the user as the first attempt stored it
            return self.get(user_id) or user.to_dict()
        return user.to_dict()

    def create_guest(self) -> dict[str, Any]:
        """ai-chatbot's guest: email ``guest-<ms>`` (plus random digits), random password nobody knows.

        The email is claimed with SET NX, so two guests of one millisecond that drew the same
        digits cannot share it: the second draws again instead of failing.
        """
        for _ in range(GUEST_ATTEMPTS - 1):
            try:
                return self._new_guest()
            except Conflict:
                continue
        return self._new_guest()

    def _new_guest(self) -> dict[str, Any]:
        email = f"guest-{time.time_ns() // 1_000_000}{secrets.randbelow(1000):03d}"
        return self.create(email, secrets.token_urlsafe(24), is_guest=True)

    def get(self, user_id: str) -> dict[str, Any] | None:
        return decode_user(get_redis().hgetall(keys.user(user_id)))

    def exists(self, user_id: str) -> bool:
        """One EXISTS: the service key acting for a user checks the user is there."""
        return bool(get_redis().exists(keys.user(user_id)))

    @staticmethod
    def queue_exists(pipe: Any, user_id: str) -> None:
        """:meth:`exists` as one command of a pipeline (its reply is 0 or 1)."""
        pipe.exists(keys.user(user_id))

    async def aexists(self, user_id: str) -> bool:
        """:meth:`exists` for async code (a socket opened with a service-key ticket re-checks its user)."""
        return bool(await get_async_redis().exists(keys.user(user_id)))

    def read(self, user_id: str, rev: Revision) -> dict[str, Any] | None:
        """A profile with its revision, in one round trip (NotModified for a current copy)."""
        pipe = pipeline()
        pipe.hgetall(keys.user(user_id))
        rev.queue(pipe)
        raw, version = pipe.execute()
        user = decode_user(raw)
        if user is not None:
            rev.check(version)
        return user

    def get_many(self, user_ids: list[str]) -> list[dict[str, Any] | None]:
        pipe = pipeline()
        for user_id in user_ids:
            pipe.hgetall(keys.user(user_id))
        return [decode_user(raw) for raw in pipe.execute()]

    def get_by_email(self, email: str) -> dict[str, Any] | None:
        user_id = get_redis().get(keys.user_email(normalize_email(email)))
        return self.get(user_id) if user_id else None

    def authenticate(self, email: str, password: str) -> dict[str, Any] | None:
        client = get_redis()
        user_id = client.get(keys.user_email(normalize_email(email)))
        if not user_id:
            make_password(password)  # same cost whether or not the email exists
            return None
        raw = client.hgetall(keys.user(user_id))
        if not raw or not raw.get("password") or not check_password(password, raw["password"]):
            return None
        return decode_user(raw)

    def update(self, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change name, type, timezone or preferences (``changes`` is validated by the caller)."""
        current = self.get(user_id)
        if current is None:
            raise NotFound("user")
        changed = {name: changes[name] for name in PROFILE_FIELDS if name in changes}
        if "password" in changes:
            changed["password"] = make_password(changes["password"])
        if not changed:
            return current
        fields = {k: v for k, v in User.build({**current, **changed}).encode().items() if k in changed}
        write = Write()
        write.step(lambda p: p.hset(keys.user(user_id), mapping=fields))
        touch_user(write, user_id, "profile")
        new_type = fields.get("type")
        if new_type and new_type != current["type"]:
            write.step(lambda p: p.zrem(keys.users_by_type(current["type"]), user_id))
            write.step(lambda p: p.zadd(keys.users_by_type(new_type), {user_id: current["createdAt"]}))
        events.stage(write, user_id, "user.updated", {"userId": user_id, "changed": sorted(changes)})
        write.execute()
        return {**current, **{name: changes[name] for name in PROFILE_FIELDS if name in changes}}

    def count(self) -> int:
        return int(get_redis().zcard(keys.users()))

    def all_ids(self, batch: int = 500) -> Iterator[str]:
        """Every user id of the ``users`` index, oldest first, read in pages (maintenance and tools)."""
        client = get_redis()
        start = 0
        while True:
            chunk = client.zrange(keys.users(), start, start + batch - 1)
            yield from chunk
            if len(chunk) < batch:
                return
            start += batch

    def list(self, *, user_type: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[dict], int]:
        """Newest users first, one page (for the admin): (users, total)."""
        index = keys.users_by_type(user_type) if user_type else keys.users()
        pipe = pipeline()
        pipe.zrevrange(index, offset, offset + limit - 1)
        pipe.zcard(index)
        ids, total = pipe.execute()
        return [u for u in self.get_many(ids) if u], total

    def delete(self, user_id: str) -> bool:
        """Remove the user with all their data: unindex first, then data, the hash last."""
        from storage.managers import chats, documents  # avoid an import cycle at module load

        user = self.get(user_id)
        if user is None:
            return False
        write = Write(frees_memory=True)
        write.step(lambda p: p.zrem(keys.users(), user_id))
        write.step(lambda p: p.zrem(keys.users_by_type(user["type"]), user_id))
        write.step(lambda p: p.delete(keys.user_email(user["email"])))
        write.execute()
        chats.delete_all_for_user(user_id, publish=False)
        documents.delete_all_for_user(user_id)
        tokens.revoke_all(user_id)
        signals.user_deleting.send(sender=UserManager, user_id=user_id)
        events.delete_stream(user_id)
        events.close_sockets(user_id)  # also those opened with a ticket the service key asked for
        write = Write(frees_memory=True)
        outbox.stage(write, "delete_user", userId=user_id)
        write.step(
            lambda p: p.delete(
                keys.user_chats(user_id),
                keys.user_chats_by_activity(user_id),
                keys.user_message_times(user_id),
                keys.user_documents(user_id),
                keys.user_tokens(user_id),
                keys.user_rev(user_id),
                keys.user(user_id),
            )
        )
        write.execute()
        return True


@dataclass(frozen=True)
class TokenInfo:
    """What a valid token stands for: its user, its digest (how it is stored) and its expiry (µs)."""

    user_id: str
    digest: str
    expires_at: int


class TokenManager:
    """API tokens: only a SHA-256 digest is stored, with the token's TTL as the key's EXPIRE.

    The check of a presented token is written once (:meth:`_key_of`, :func:`_token_info`) and
    run by a sync client (the REST API, :meth:`lookup`) or an async one (websockets,
    :meth:`alookup`): same format rules, same key, same reply handling.
    """

    @staticmethod
    def digest(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self, user_id: str, ttl: int | None = None) -> dict[str, Any]:
        ttl = ttl or settings.MOOKTI_TOKEN_TTL
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = self.digest(token)
        created = now_us()
        expires = created + ttl * 1_000_000
        write = Write()

        def store(p: Any) -> None:
            p.hset(keys.token(digest), mapping=Token(user_id, created, expires).encode())
            p.expire(keys.token(digest), ttl)

        def index(p: Any) -> None:
            p.zremrangebyscore(keys.user_tokens(user_id), "-inf", created)
            p.zadd(keys.user_tokens(user_id), {digest: expires})

        write.step(store)
        write.step(index)
        write.execute()
        return {"token": token, "userId": user_id, "expiresAt": expires}

    def _digest_of(self, token: str) -> str | None:
        """The digest of a well-formed token; None for anything that cannot be one (no Redis call)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self.digest(token)

    def digest_of(self, token: str) -> str | None:
        """The digest of a well-formed token, None for anything that cannot be one (no Redis call)."""
        return self._digest_of(token)

    @staticmethod
    def queue_lookup(pipe: Any, digest: str) -> None:
        """:meth:`lookup` as one command of a pipeline (its reply goes to :meth:`info`)."""
        pipe.hmget(keys.token(digest), TOKEN_FIELDS)

    @staticmethod
    def info(digest: str, reply: list[str | None]) -> TokenInfo | None:
        return _token_info(digest, reply)

    def lookup(self, token: str) -> TokenInfo | None:
        """The token's user, digest and expiry, or None (malformed, unknown, expired, revoked): one round trip."""
        digest = self._digest_of(token)
        return _token_info(digest, get_redis().hmget(keys.token(digest), TOKEN_FIELDS)) if digest else None

    async def alookup(self, token: str) -> TokenInfo | None:
        """:meth:`lookup` for async code."""
        digest = self._digest_of(token)
        return _token_info(digest, await get_async_redis().hmget(keys.token(digest), TOKEN_FIELDS)) if digest else None

    async def ais_live(self, digest: str, user_id: str) -> bool:
        """The token with this digest still belongs to ``user_id`` (not revoked, not expired)."""
        return await get_async_redis().hget(keys.token(digest), "userId") == user_id

    def user_for(self, token: str) -> str | None:
        """The user id a token belongs to, or None (unknown, expired or revoked): one round trip."""
        info = self.lookup(token)
        return info.user_id if info else None

    def revoke(self, token: str) -> bool:
        digest = self.digest(token)
        user_id = get_redis().hget(keys.token(digest), "userId")
        if not user_id:
            return False
        write = Write(frees_memory=True)
        write.step(lambda p: p.zrem(keys.user_tokens(user_id), digest))
        write.step(lambda p: p.delete(keys.token(digest)))
        write.on_commit(lambda _: events.close_sockets(user_id, [digest]))
        write.execute()
        return True

    def revoke_all(self, user_id: str) -> int:
        digests = get_redis().zrange(keys.user_tokens(user_id), 0, -1)
        write = Write(frees_memory=True)
        write.step(lambda p: p.delete(keys.user_tokens(user_id)))
        for digest in digests:
            write.step(lambda p, d=digest: p.delete(keys.token(d)))
        if digests:
            write.on_commit(lambda _: events.close_sockets(user_id, digests))
        write.execute()
        return len(digests)


def _token_info(digest: str, reply: list[str | None]) -> TokenInfo | None:
    user_id, expires_at = reply
    return TokenInfo(user_id, digest, int(expires_at or 0)) if user_id else None


users = UserManager()
tokens = TokenManager()
