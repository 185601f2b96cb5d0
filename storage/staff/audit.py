"""The admin's audit trail: the only code using the admin's own keys (``storage.staff.keys``).

Every staff action is recorded twice: in the Redis stream shown on the operations page and in
Django's admin log (the index page's "Recent actions").
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.http import HttpRequest

from mookti.ids import now_us
from mookti.redis import Write, get_redis
from storage.staff import keys

logger = logging.getLogger("storage.staff.site")

AUDIT_MAXLEN = 10_000


def audit(request: HttpRequest, action: str, target: str, detail: str = "", *, deletion: bool = False) -> None:
    """Record a staff action: the Redis audit stream (operations page) and Django's admin log (index page)."""
    staff = request.user.get_username()
    entry = {"staff": staff, "action": action, "target": target, "detail": detail, "at": str(now_us())}
    write = Write()
    write.step(lambda p: p.xadd(keys.admin_audit(), entry, maxlen=AUDIT_MAXLEN, approximate=True))
    write.execute()
    LogEntry.objects.create(
        user_id=request.user.pk,
        content_type=None,
        object_id=target,
        object_repr=f"{action}: {target}"[:200],
        action_flag=DELETION if deletion else CHANGE,
        change_message=detail or action,
    )
    logger.info("admin action %s on %s by %s %s", action, target, staff, detail)


def recent(count: int = 50) -> list[dict[str, Any]]:
    """The newest entries, newest first; ``at`` as microseconds since the epoch."""
    entries = get_redis().xrevrange(keys.admin_audit(), count=count)
    return [{"id": entry_id, **fields} for entry_id, fields in entries]


def size() -> int:
    return int(get_redis().xlen(keys.admin_audit()))
