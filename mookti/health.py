"""``GET /api/health/``: no auth; 200 with each dependency's state, 503 when Redis is down.

Apps add checks to ``CHECKS`` (name -> callable returning a JSON-able dict with ``ok``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
def health(request) -> JsonResponse:
    report: dict[str, Any] = {}
    for name, check in CHECKS.items():
        try:
            report[name] = check()
        except Exception as exc:
            report[name] = {"ok": False, "error": type(exc).__name__}
    healthy = all(report[name].get("ok") for name in CRITICAL)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": report}, status=200 if healthy else 503
    )
