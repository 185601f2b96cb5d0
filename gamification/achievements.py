"""Achievement definitions: each is awarded once (HSETNX) when a lifetime counter or the
current streak reaches its threshold, checked inside the same Lua call as the change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Achievement:
    id: str
    title: str
    description: str
    metric: str  # "streak" (current streak) or a lifetime counter of the totals hash
    threshold: int
    xp: int


# XP achievements come last: the XP the others award counts toward them in the same call.
ACHIEVEMENTS: tuple[Achievement, ...] = (
    Achievement("first_message", "First words", "Sent your first message to the tutor.", "messages", 1, 10),
    Achievement("first_item", "First step", "Completed your first learning item.", "items", 1, 10),
    Achievement("items_100", "Centurion", "Completed 100 learning items.", "items", 100, 100),
    Achievement("first_goal", "Goal getter", "Completed your first goal.", "goals", 1, 25),
    Achievement("streak_7", "Week streak", "Learned 7 days in a row.", "streak", 7, 50),
    Achievement("streak_30", "Month streak", "Learned 30 days in a row.", "streak", 30, 200),
    Achievement("streak_100", "Hundred days", "Learned 100 days in a row.", "streak", 100, 500),
    Achievement("xp_1000", "1,000 XP", "Earned 1,000 XP.", "xp", 1000, 0),
)
BY_ID = {a.id: a for a in ACHIEVEMENTS}


def rules() -> list[list[Any]]:
    """The rules in the shape the Lua scripts take: [metric, threshold, id, xp]."""
    return [[a.metric, a.threshold, a.id, a.xp] for a in ACHIEVEMENTS]


def describe(achievement_id: str, awarded_at: int | None) -> dict[str, Any]:
    found = BY_ID.get(achievement_id)
    return {
        "id": achievement_id,
        "title": found.title if found else achievement_id,
        "description": found.description if found else "",
        "xp": found.xp if found else 0,
        "awardedAt": awarded_at,
    }
