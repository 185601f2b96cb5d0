"""Gamification test helpers: learners in a given timezone, local times as microseconds,
activity recorded at a simulated "now", and the live events a user received."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gamification.managers import activity, engine
from mookti import events
from mookti.ids import to_us


def at(local: str, tz: str = "UTC") -> int:
    """Microseconds of a local wall time, e.g. ``at("2026-03-08 23:30", "America/New_York")``."""
    return to_us(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)))


def act(user: dict[str, Any], when: int, kind: str = "practice", **kwargs: Any) -> dict[str, Any]:
    """Record an activity that happens at ``when`` (the simulated now), unless ``now`` is given."""
    now = kwargs.pop("now", when)
    return activity.record(user, kind, occurred_at=when, now=now, **kwargs)


def events_of(user_id: str) -> list[tuple[str, dict[str, Any]]]:
    engine.flush_background()  # a learner message's derived events are published after the response
    return [(event_type, json.loads(data)) for _, event_type, data in events.read(user_id)]


@pytest.fixture
def learner(make_user):
    """A learner in a chosen timezone: ``learner("Asia/Tokyo")``."""

    def make(tz: str = "UTC") -> dict[str, Any]:
        return make_user(timezone=tz)

    return make
