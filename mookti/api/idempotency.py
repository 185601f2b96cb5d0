"""``Idempotency-Key`` on POSTs: a retried request is applied once and gets the first answer.

The first attempt claims ``idempotency:{digest}`` (the digest names caller, path and key) with
the time it began, and runs inside an idempotency scope (:class:`mookti.ids.Scope`): its ids and
timestamps derive from the scope and each of its writes carries a guard (``mookti.redis.Write``).
Its answer (anything but a 5xx or a 429) is stored under the claim. A later attempt with the
same key then gets:

- the stored answer, byte for byte, with ``Idempotent-Replayed: true``;
- or, when the first attempt's outcome is unknown (it failed with a 5xx, e.g. Redis went away
  after applying the write, or it is still running), a re-run in the same scope: it computes
  the same ids and timestamps, and every write the first attempt applied is a no-op.

Answers are kept ``MOOKTI_IDEMPOTENCY_TTL`` seconds. A key is 1-255 printable ASCII characters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from mookti import keys
from mookti.api.exceptions import error_body
from mookti.api.schema import ERROR_DESCRIPTIONS, ERROR_REF
from mookti.ids import Scope, idempotency_scope, now_us
from mookti.redis import REDIS_ERRORS, get_redis

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


def _digest(request: HttpRequest, key: str) -> str:
    caller = "\n".join(request.headers.get(name, "") for name in ("Authorization", "X-Mookti-User"))
    return hashlib.sha256(f"{request.method}\n{request.path}\n{caller}\n{key}".encode()).hexdigest()


def _error(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status)


def begin(request: HttpRequest, key: str) -> Scope | HttpResponse:
    """Claim the key (one round trip): a scope to run the request in, or the answer to send now."""
    if not KEY_PATTERN.fullmatch(key):
        return _error(400, "bad_request:api", "Invalid input.", {HEADER: ["must be 1-255 printable ASCII characters"]})
    digest = _digest(request, key)
    start_ms = now_us() // 1000
    try:
        seen = get_redis().set(
            keys.idempotency(digest), start_ms, nx=True, get=True, px=settings.MOOKTI_IDEMPOTENCY_TTL * 1000
        )
    except REDIS_ERRORS:  # the breaker logs the outage once
        response = _error(503, "unavailable:database", "The data store is unavailable; try again.")
        response["Retry-After"] = "1"
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
    if seen is None:
        return Scope(digest, start_ms)
    if seen.startswith("{"):
        stored = json.loads(seen)
        response = HttpResponse(stored["body"], status=stored["status"], content_type=stored["type"])
        response[REPLAYED] = "true"
        return response
    return Scope(digest, int(seen), replay=True)


def finish(scope: Scope, response: HttpResponse) -> None:
    """Store a final answer under the claim; a 5xx or 429 leaves it open for a re-run."""
    if response.status_code >= 500 or response.status_code == 429 or response.streaming:
        return
    answer = {"status": response.status_code, "type": response.get("Content-Type", "")}
    answer["body"] = response.content.decode()
    try:
        get_redis().set(keys.idempotency(scope.token), json.dumps(answer), px=settings.MOOKTI_IDEMPOTENCY_TTL * 1000)
    except REDIS_ERRORS as exc:  # the claim stays: a retry re-runs the request, applying nothing twice
        logger.warning("could not store the answer of an idempotent request: %s", type(exc).__name__)


def _wanted(request: HttpRequest) -> str | None:
    return request.headers.get(HEADER) if request.method == "POST" else None


@sync_and_async_middleware
def idempotency_middleware(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    """Everything without the header passes straight through (and health checks stay async)."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            key = _wanted(request)
            if key is None:
                return await get_response(request)
            started = await sync_to_async(begin, thread_sensitive=False)(request, key)
            if isinstance(started, HttpResponse):
                return started
            with idempotency_scope(started):
                response = await get_response(request)
            await sync_to_async(finish, thread_sensitive=False)(started, response)
            return response

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponse:
        key = _wanted(request)
        if key is None:
            return get_response(request)
        started = begin(request, key)
        if isinstance(started, HttpResponse):
            return started
        with idempotency_scope(started):
            response = get_response(request)
        finish(started, response)
        return response

    return sync_middleware


def declare_header(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every POST of the API takes an optional ``Idempotency-Key``."""
    parameter = {
        "in": "header",
        "name": HEADER,
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN.pattern},
        "description": (
            "Makes the POST safe to retry: a repeat with the same key (same caller and path, within "
            f"{settings.MOOKTI_IDEMPOTENCY_TTL // 3600} h) is applied once and answers like the first "
            "attempt (with `Idempotent-Replayed: true` when the stored answer is sent)."
        ),
    }
    for operations in result.get("paths", {}).values():
        post = operations.get("post")
        if post is not None and not any(p.get("name") == HEADER for p in post.get("parameters", [])):
            post.setdefault("parameters", []).append(parameter)
            # a malformed key is a 400, also on a POST that takes no other input
            post.setdefault("responses", {}).setdefault(
                "400",
                {"description": ERROR_DESCRIPTIONS[400], "content": {"application/json": {"schema": ERROR_REF}}},
            )
    return result
