"""Shared fixtures: real Redis under this run's prefix, users with tokens, API clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from mookti.redis import delete_prefix, get_redis
from storage.managers import tokens, users


def delete_keys(prefix: str) -> int:
    """Remove every key under ``prefix`` (never anything else: the same Redis may hold other data)."""
    return delete_prefix(prefix)


@pytest.fixture(scope="session", autouse=True)
def _redis_namespace() -> Iterator[str]:
    # Fast password hashing for fixtures (Django's own advice for test suites).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    prefix = settings.MOOKTI_REDIS_PREFIX
    assert prefix.startswith("mookti-test:"), prefix
    yield prefix
    # work handed to background threads (live-update pokes, gamification events) lands first
    from gamification.managers import engine
    from mookti import events

    engine.flush_background()
    events.flush()
    delete_keys(prefix)


def snapshot_keys() -> dict[str, Any]:
    """Every key of this run with its value (to prove a request wrote nothing).

    Values, not DUMP fingerprints: a large hash's DUMP order can change when Redis rehashes it
    incrementally during a read.
    """
    from storage.portability.sections import key_values

    prefix = settings.MOOKTI_REDIS_PREFIX
    django_cache = settings.CACHES["default"]["KEY_PREFIX"]  # pickled sessions of admin tests: not app data
    names = [k for k in get_redis().scan_iter(match=f"{prefix}*", count=1000) if not k.startswith(django_cache)]
    return key_values(names)


class Api:
    """An API client acting as one user (token) or as the service key."""

    def __init__(self, token: str | None = None, act_as: str | None = None) -> None:
        self.client = APIClient()
        headers: dict[str, Any] = {}
        if token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        if act_as:
            headers["HTTP_X_MOOKTI_USER"] = act_as
        self.client.credentials(**headers)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(path: str, data: Any = None, **kwargs: Any) -> Any:
            if name in ("get", "delete") and data is not None and not kwargs.get("format"):
                return method(path, data, **kwargs)
            return method(path, data, format=kwargs.pop("format", "json"), **kwargs)

        return call


@pytest.fixture
def make_user():
    def make(**fields: Any) -> dict[str, Any]:
        email = fields.pop("email", f"{uuid.uuid4().hex[:10]}@example.com")
        user = users.create(email, fields.pop("password", "correct horse battery"), **fields)
        user["token"] = tokens.issue(user["id"])["token"]
        user["api"] = Api(user["token"])
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user(name="Alice")


@pytest.fixture
def bob(make_user):
    return make_user(name="Bob")


@pytest.fixture
def service() -> Api:
    return Api(settings.MOOKTI_SERVICE_KEY)


@pytest.fixture
def anon() -> Api:
    return Api()
