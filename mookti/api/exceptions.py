"""The one exception handler of the API: every error body is
``{"error": {"code": ..., "message": ..., "fields": {...}}}``, domain errors included."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from mookti.errors import DomainError, RateLimited
from mookti.redis import REDIS_ERRORS, is_out_of_memory

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error body of the API (also for the middleware answers that never reach DRF)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


_DRF_CODES = {
    400: "bad_request:api",
    401: "unauthorized:auth",
    403: "forbidden:auth",
    404: "not_found:api",
    405: "method_not_allowed:api",
    406: "not_acceptable:api",
    413: "payload_too_large:api",
    415: "unsupported_media_type:api",
    429: "rate_limit:api",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large:api", "Request body too large."), status=413)
    if is_out_of_memory(exc):
        logger.error(
            "Redis refused a write: its memory is full (maxmemory reached, noeviction). Raise maxmemory "
            "(or the plan), or free space: deletes still work; MOOKTI_EVENTS_RETENTION bounds the event streams."
        )
        message = "The data store's memory is full: new data is refused until space is freed (deletes still work)."
        return Response(error_body("insufficient_storage:database", message), status=507)
    if isinstance(exc, REDIS_ERRORS):
        # the breaker (mookti.redis) logs the outage once; one line per refused request would flood the log
        logger.debug("Redis unavailable: %s", type(exc).__name__)
        response = Response(error_body("unavailable:database", "The data store is unavailable; try again."), status=503)
        response["Retry-After"] = "1"
        response._has_been_logged = True  # by django.request, which logs every 5xx
        return response
    if isinstance(exc, (Http404, PermissionDenied)):
        exc = exceptions.NotFound() if isinstance(exc, Http404) else exceptions.PermissionDenied()
    from rest_framework.views import exception_handler as drf_exception_handler  # DRF imports this module

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _DRF_CODES.get(response.status_code, "error:api")
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body(code, "Invalid input.", fields)
    else:
        detail = getattr(exc, "detail", "")
        response.data = error_body(code, str(detail) if detail else response.status_text)
    return response


_JSON_TYPES = ("application/json", "application/problem+json")
_PLAIN_CODES = {**_DRF_CODES, 500: "server_error:api", 503: "unavailable:api"}


class JsonErrorsMiddleware:
    """Every error under ``/api/`` is the one JSON error body, even those DRF never sees: unknown
    routes (Django's HTML 404), methods a plain view refuses, server errors, CSRF and host checks."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith("/api/")
            or response.get("Content-Type", "").split(";")[0].strip() in _JSON_TYPES
        ):
            return response
        return json_error(response)


def json_error(response: HttpResponse) -> JsonResponse:
    """An error answer that is not the API's JSON error body, as one (its status and the headers
    a client acts on are kept)."""
    status = response.status_code
    text = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    json_response = JsonResponse(error_body(_PLAIN_CODES.get(status, "error:api"), text), status=status)
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            json_response[header] = response[header]
    return json_response
