"""``Idempotency-Key`` on POSTs: a retried request is applied once and gets the first answer.

The first attempt claims ``idempotency:{digest}`` (the digest names caller, path and key) with
the time it began and its body's fingerprint, and runs inside an idempotency scope
(:class:`mookti.ids.Scope`): its ids and timestamps derive from the scope and each of its writes
carries a guard (``mookti.redis.Write``). Its answer (anything but a 5xx or a 429) is stored
under the claim. A later attempt with the same key then gets:

- the stored answer, byte for byte, with ``Idempotent-Replayed: true``;
- or, when the first attempt's outcome is unknown (it failed with a 5xx, e.g. Redis went away
  after applying the write, or it is still running), a re-run in the same scope: it computes
  the same ids and timestamps, and every write the first attempt applied is a no-op;
- a 422 when its body differs from the first attempt's (a key names one request, as the IETF
  draft "The Idempotency-Key HTTP Header Field" asks).

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
REUSED = "This Idempotency-Key was used for a request with another body; use a new key for a new request."


def _digest(request: HttpRequest, key: str) -> str:
    caller = "\n".join(request.headers.get(name, "") for name in ("Authorization", "X-Mookti-User"))
    return hashlib.sha256(f"{request.method}\n{request.path}\n{caller}\n{key}".encode()).hexdigest()


def _fingerprint(request: HttpRequest) -> str:
    """What the request asks for: a retry must send the same body (a body too large to read is
    named by its length; the view refuses it anyway)."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return f"length:{length}"
    content_type = request.META.get("CONTENT_TYPE", "").encode()
    return hashlib.sha256(content_type + b"\n" + request.body).hexdigest()[:32]


def _error(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status)


def _reused() -> JsonResponse:
    return _error(422, "unprocessable:idempotency", REUSED, {HEADER: ["already used with another request body"]})


def begin(request: HttpRequest, key: str) -> Scope | HttpResponse:
    """Claim the key (one round trip): a scope to run the request in, or the answer to send now."""
    if not KEY_PATTERN.fullmatch(key):
        return _error(400, "bad_request:api", "Invalid input.", {HEADER: ["must be 1-255 printable ASCII characters"]})
    digest, fingerprint = _digest(request, key), _fingerprint(request)
    start_ms = now_us() // 1000
    try:
        seen = get_redis().set(
            keys.idempotency(digest),
            f"{start_ms}:{fingerprint}",
            nx=True,
            get=True,
            px=settings.MOOKTI_IDEMPOTENCY_TTL * 1000,
        )
    except REDIS_ERRORS:  # the breaker logs the outage once
        response = _error(503, "unavailable:database", "The data store is unavailable; try again.")
        response["Retry-After"] = "1"
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
    if seen is None:
        return Scope(digest, start_ms, fingerprint=fingerprint)
    if seen.startswith("{"):
        stored = json.loads(seen)
        if stored.get("fingerprint", fingerprint) != fingerprint:
            return _reused()
        response = HttpResponse(stored["body"], status=stored["status"], content_type=stored["type"])
        response[REPLAYED] = "true"
        return response
    first_ms, _, first_fingerprint = seen.partition(":")
    if first_fingerprint and first_fingerprint != fingerprint:
        return _reused()
    return Scope(digest, int(first_ms), replay=True, fingerprint=fingerprint)


def finish(scope: Scope, response: HttpResponse) -> None:
    """Store a final answer under the claim; a 5xx or 429 leaves it open for a re-run."""
    if response.status_code >= 500 or response.status_code == 429 or response.streaming:
        return
    answer = {
        "status": response.status_code,
        "type": response.get("Content-Type", ""),
        "fingerprint": scope.fingerprint,
        "body": response.content.decode(),
    }
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


JSON_ERROR = {"application/json": {"schema": ERROR_REF}}
REUSED_DESCRIPTION = "The `Idempotency-Key` was used before for a request with another body."


def declare_header(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every POST of the API takes an optional ``Idempotency-Key``."""
    parameter = {
        "in": "header",
        "name": HEADER,
        "required": False,
        # format: a key names one request (a client makes a new one per request, e.g. a UUID)
        "schema": {
            "type": "string",
            "format": "idempotency-key",
            "minLength": 1,
            "maxLength": 255,
            "pattern": KEY_PATTERN.pattern,
        },
        "description": (
            "Makes the POST safe to retry: a repeat with the same key (same caller and path, within "
            f"{settings.MOOKTI_IDEMPOTENCY_TTL // 3600} h) is applied once and answers like the first "
            "attempt (with `Idempotent-Replayed: true` when the stored answer is sent); the same key "
            "with another body is a 422."
        ),
    }
    for operations in result.get("paths", {}).values():
        post = operations.get("post")
        if post is not None and not any(p.get("name") == HEADER for p in post.get("parameters", [])):
            post.setdefault("parameters", []).append(parameter)
            # a malformed key is a 400, also on a POST that takes no other input; a reused one a 422
            responses = post.setdefault("responses", {})
            for status, text in ((400, ERROR_DESCRIPTIONS[400]), (422, REUSED_DESCRIPTION)):
                answer = responses.setdefault(str(status), {"description": "", "content": JSON_ERROR})
                if text not in answer["description"]:
                    answer["description"] = f"{answer['description']} {text}".strip()
    return result
