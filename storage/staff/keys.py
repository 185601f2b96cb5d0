"""Every Redis key name of the staff admin, and nothing else builds them."""

from __future__ import annotations

from mookti.redis import key


def admin_audit() -> str:
    """STREAM of staff actions in the admin (staff, action, target, detail), approximately capped."""
    return key("admin:audit")
