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

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from mookti.redis import ping

CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}
CRITICAL = {"redis"}


def register(name: str, check: Callable[[], dict[str, Any]], *, critical: bool = False) -> None:
    CHECKS[name] = check
    if critical:
        CRITICAL.add(name)


register("redis", lambda: {"ok": ping()}, critical=True)


@require_GET
async def live(request) -> JsonResponse:
    """The process is up and serving requests; nothing else is checked."""
    return JsonResponse({"status": "ok"})


@require_GET
async def health(request) -> JsonResponse:
    """Readiness: every registered check; 503 when a critical dependency is down."""
    report = await sync_to_async(run_checks, thread_sensitive=False)()
    healthy = all(report[name].get("ok") for name in CRITICAL)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": report}, status=200 if healthy else 503
    )


def run_checks() -> dict[str, dict[str, Any]]:
    """Every registered check's report (sync: checks use the sync clients)."""
    report: dict[str, Any] = {}
    for name, check in CHECKS.items():
        try:
            report[name] = check()
        except Exception as exc:
            report[name] = {"ok": False, "error": type(exc).__name__}
    return report
