"""Health endpoints for load balancers and operators (no auth).

- ``GET /api/health/live``: liveness: the process answers; touches no dependency (a Redis outage
  must not make an orchestrator restart healthy web processes).
- ``GET /api/health/ready`` (and ``/api/health/``, the same): readiness: each dependency's state,
  503 when a critical one (Redis) is down, so a balancer sends no traffic here meanwhile.

Apps add checks with :func:`register` (name -> callable returning a JSON-able dict with ``ok``).
A check's error is reported by exception type only: messages may carry URLs or keys.

Both views are async and run the checks on a worker thread of their own (not the one thread
Django runs sync views on), so they answer while API requests are stuck on a stalled Redis;
the Redis check costs at most ``MOOKTI_REDIS_TIMEOUT``, nothing while its circuit breaker is open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from mookti.redis import ping

CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}
CRITICAL = {"redis"}


def register(name: str, check: Callable[[], dict[str, Any]], *, critical: bool = False) -> None:
    CHECKS[name] = check
    if critical:
        CRITICAL.add(name)


register("redis", lambda: {"ok": ping()}, critical=True)


LIVE_SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok"]}},
    "required": ["status"],
    "additionalProperties": False,
}
HEALTH_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {
            "type": "object",
            "description": "Each dependency's state: `ok`, and what the check adds (latency, errors ...).",
            "additionalProperties": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}},
                "required": ["ok"],
                "additionalProperties": True,
            },
        },
    },
    "required": ["status", "checks"],
    "additionalProperties": False,
}


@extend_schema(
    operation_id="getLiveness",
    responses={200: OpenApiResponse(LIVE_SCHEMA, description="The process answers (no dependency is checked).")},
    summary="Liveness: the process is up (no auth, no dependencies)",
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def live(request: Request) -> Response:
    """The process is up and serving requests; nothing else is checked."""
    return Response({"status": "ok"})


_REPORT_RESPONSES = {
    200: OpenApiResponse(HEALTH_SCHEMA, description="Redis (and every critical dependency) answers."),
    503: OpenApiResponse(HEALTH_SCHEMA, description="A critical dependency (Redis) is down."),
}


def _report() -> Response:
    """Each check's state; 503 when a critical one fails (what both health paths answer)."""
    report: dict[str, Any] = {}
    for name, check in CHECKS.items():
        try:
            report[name] = check()
        except Exception as exc:
            report[name] = {"ok": False, "error": type(exc).__name__}
    healthy = all(report[name].get("ok") for name in CRITICAL)
    return Response({"status": "ok" if healthy else "unavailable", "checks": report}, status=200 if healthy else 503)


@extend_schema(
    operation_id="getHealth",
    responses=_REPORT_RESPONSES,
    summary="Health of Redis and the other dependencies (no auth)",
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def health(request: Request) -> Response:
    """The dependencies' states, for operators (the same answer as readiness)."""
    return _report()


@extend_schema(
    operation_id="getReadiness",
    responses=_REPORT_RESPONSES,
    summary="Readiness: 200 when Redis answers, else 503 (no auth)",
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def ready(request: Request) -> Response:
    """Whether to send traffic here: the balancer's check."""
    return _report()
