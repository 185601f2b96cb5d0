"""Validation (input) and JSON shape (output) of the gamification API: camelCase, ISO-8601 UTC,
the storage app's strict serializers (unknown fields are errors)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gamification.days import day_end_us, week_start
from gamification.managers import engine
from mookti.api.fields import IdField, StrictSerializer, TimestampField, TimezoneField
from mookti.api.schema import TIMESTAMP_IN
from mookti.ids import to_us

MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_COUNT = 1_000_000_000
MAX_MODULES = 200
MAX_NODES_PER_MODULE = 1000
MAX_NODES_PER_PATH = 5000
EXPLICIT_ACTIVITY_TYPES = ("item", "practice")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
WEEK = re.compile(r"^\d{4}-W\d{2}$")
WEEK_IN = r"^(19|20|21)\d\d-W(0[1-9]|[1-4]\d|5[0-3])$"  # what the leaderboard takes (W53 where a year has one)
LATEST_DUE = datetime(2200, 1, 1, tzinfo=UTC)
EARLIEST_DAY = date(2000, 1, 1)


@extend_schema_field(
    {
        "description": "A plain date (the end of that day in the user's time zone), or a timestamp; after the current "
        "time and before 2200.",
        "x-time-window": "future",
        "anyOf": [
            {"type": "string", "format": "date"},
            TIMESTAMP_IN["anyOf"][0],
            {**TIMESTAMP_IN["anyOf"][1], "maximum": to_us(LATEST_DUE) // 1000 - 1},
        ],
    }
)
class DueDateField(TimestampField):
    """A timestamp, or a plain date (``2025-03-01``): the end of that day in the user's timezone."""

    default_error_messages = {**TimestampField.default_error_messages, "too_late": "Use a date before 2200."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and DATE_ONLY.fullmatch(data):
            try:
                day = date.fromisoformat(data)
            except ValueError:
                self.fail("invalid")
            if day >= LATEST_DUE.date():
                self.fail("too_late")
            return day_end_us(day, self.context.get("timezone"))
        value = super().to_internal_value(data)
        if value >= to_us(LATEST_DUE):
            self.fail("too_late")
        return value


# --- streak, activity, stats, achievements ------------------------------------------------------
class StreakOut(serializers.Serializer):
    current = serializers.IntegerField()
    longest = serializers.IntegerField()
    freezes = serializers.IntegerField()
    maxFreezes = serializers.IntegerField()
    lastActivity = TimestampField(allow_null=True)
    lastActivityDate = serializers.DateField(allow_null=True)
    today = serializers.DateField()
    timezone = serializers.CharField()
    alive = serializers.BooleanField()
    activeToday = serializers.BooleanField()
    freezesNeeded = serializers.IntegerField()


class StatsCountsOut(serializers.Serializer):
    """The counters a day and a range of days share."""

    messages = serializers.IntegerField()
    minutes = serializers.IntegerField()
    xp = serializers.IntegerField()
    itemsCompleted = serializers.IntegerField()
    goalsCompleted = serializers.IntegerField()


class DayStatsOut(StatsCountsOut):
    date = serializers.DateField()


class StatsTotalsOut(StatsCountsOut):
    activeDays = serializers.IntegerField()


class StatsOut(serializers.Serializer):
    to = serializers.DateField()
    timezone = serializers.CharField()
    days = DayStatsOut(many=True)
    totals = StatsTotalsOut()

    def get_fields(self) -> dict[str, Any]:
        return {"from": serializers.DateField(), **super().get_fields()}  # "from" is a Python keyword


class StatsQuery(StrictSerializer):
    ordered = (("from", "to"),)  # from is not after to
    to = serializers.DateField(required=False)

    @staticmethod
    def spans() -> list[tuple[str, str, int]]:
        """(first, last, days): the range covers at most ``days`` days; ``last`` defaults to today."""
        return [("from", "to", engine.config()["STATS_RETENTION_DAYS"])]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.DateField(required=False)  # a Python keyword
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("from", "to"):
            if name in attrs and not EARLIEST_DAY <= attrs[name] < LATEST_DUE.date():
                raise serializers.ValidationError({name: [f"Use a date from {EARLIEST_DAY} to 2199-12-31."]})
        return attrs


class AchievementOut(serializers.Serializer):
    id = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    xp = serializers.IntegerField()
    awardedAt = TimestampField(allow_null=True)


class ActivityIn(StrictSerializer):
    type = serializers.ChoiceField(EXPLICIT_ACTIVITY_TYPES)
    occurredAt = TimestampField(required=False, window="recent")
    minutes = serializers.IntegerField(min_value=0, max_value=24 * 60, default=0)
    id = IdField(required=False)
    timezone = TimezoneField(required=False)


class ActivityOut(serializers.Serializer):
    counted = serializers.BooleanField()
    date = serializers.DateField()
    xpAwarded = serializers.IntegerField()
    xpTotal = serializers.IntegerField()
    streak = StreakOut()
    stats = DayStatsOut()
    achievements = AchievementOut(many=True)


class XpOut(serializers.Serializer):
    total = serializers.IntegerField()
    week = serializers.CharField()
    weekXp = serializers.IntegerField()
    bySource = serializers.DictField(child=serializers.IntegerField())


# --- goals --------------------------------------------------------------------------------------
class GoalOut(serializers.Serializer):
    id = serializers.CharField()
    userId = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    progress = serializers.IntegerField()
    current = serializers.IntegerField(allow_null=True)
    target = serializers.IntegerField(allow_null=True)
    dueDate = TimestampField(allow_null=True)
    status = serializers.ChoiceField(("active", "completed", "expired"))
    createdAt = TimestampField()
    updatedAt = TimestampField()
    completedAt = TimestampField(allow_null=True)


class GoalUpdateIn(StrictSerializer):
    schema_extra = {"minProperties": 1, "x-excludes": {"target": ["progress"]}}  # progress follows a target
    title = serializers.CharField(min_length=1, max_length=MAX_TITLE, required=False)
    description = serializers.CharField(max_length=MAX_DESCRIPTION, allow_blank=True, required=False)
    target = serializers.IntegerField(min_value=1, max_value=MAX_COUNT, allow_null=True, required=False)
    current = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, required=False)
    progress = serializers.IntegerField(min_value=0, max_value=100, required=False)
    dueDate = DueDateField(allow_null=True, required=False)
    status = serializers.ChoiceField(("active", "completed"), required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send at least one field to change.")
        return attrs


class GoalCreateIn(GoalUpdateIn):
    # a new goal starts below 100%: progress, or current/target, under 100; progress follows a target
    schema_extra = {"x-less-than": [["current", "target"]], "x-excludes": {"target": ["progress"]}}
    id = IdField(required=False)
    title = serializers.CharField(min_length=1, max_length=MAX_TITLE)
    progress = serializers.IntegerField(min_value=0, max_value=99, required=False)
    status = None  # a new goal is active

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs


class GoalListQuery(StrictSerializer):
    status = serializers.ChoiceField(("active", "expired", "completed", "all"), default="active")
    limit = serializers.IntegerField(min_value=1, max_value=100, default=100)


class GoalListOut(serializers.Serializer):
    goals = GoalOut(many=True)


# --- learning progress --------------------------------------------------------------------------
class ModuleProgressIn(StrictSerializer):
    schema_extra = {"x-max-items-by": {"completedNodes": "totalNodes"}}  # at most totalNodes completed
    moduleId = IdField()
    completedNodes = serializers.ListField(child=IdField(), max_length=MAX_NODES_PER_MODULE, default=list)
    totalNodes = serializers.IntegerField(min_value=0, max_value=MAX_NODES_PER_MODULE, allow_null=True, required=False)
    timeSpentSeconds = serializers.IntegerField(min_value=0, max_value=10**8, default=0)
    currentNode = IdField(allow_null=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["completedNodes"] = sorted(set(attrs["completedNodes"]))
        total = attrs.get("totalNodes")
        if total is not None and len(attrs["completedNodes"]) > total:
            raise serializers.ValidationError({"completedNodes": ["More completed nodes than totalNodes."]})
        return attrs


class ProgressIn(StrictSerializer):
    schema_extra = {"x-unique-by": {"modules": "moduleId"}}
    currentModule = IdField(allow_null=True, required=False)
    currentNode = IdField(allow_null=True, required=False)
    modules = ModuleProgressIn(many=True, max_length=MAX_MODULES, required=False)
    updatedAt = TimestampField(required=False, window="past")

    def validate_modules(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [m["moduleId"] for m in value]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("Module ids must be unique.")
        if sum(len(m["completedNodes"]) for m in value) > MAX_NODES_PER_PATH:
            raise serializers.ValidationError(f"At most {MAX_NODES_PER_PATH} completed nodes per path.")
        return value


class ModuleProgressOut(serializers.Serializer):
    moduleId = serializers.CharField()
    completedNodes = serializers.ListField(child=serializers.CharField())
    completedCount = serializers.IntegerField()
    totalNodes = serializers.IntegerField(allow_null=True)
    percent = serializers.IntegerField(allow_null=True)
    timeSpentSeconds = serializers.IntegerField()
    currentNode = serializers.CharField(allow_null=True)
    updatedAt = TimestampField()


class ProgressSummaryOut(serializers.Serializer):
    pathId = serializers.CharField()
    currentModule = serializers.CharField(allow_null=True)
    currentNode = serializers.CharField(allow_null=True)
    percent = serializers.IntegerField(allow_null=True)
    completedCount = serializers.IntegerField()
    totalNodes = serializers.IntegerField(allow_null=True)
    timeSpentSeconds = serializers.IntegerField()
    updatedAt = TimestampField()


class ProgressOut(ProgressSummaryOut):
    modules = ModuleProgressOut(many=True)


class ProgressListOut(serializers.Serializer):
    paths = ProgressSummaryOut(many=True)


# --- leaderboard, summary -----------------------------------------------------------------------
@extend_schema_field({"type": "string", "pattern": WEEK_IN, "format": "iso-week"})
class IsoWeekField(serializers.RegexField):
    """An ISO week label (``2025-W07``); W53 only in a year that has one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(WEEK_IN, **kwargs)


class LeaderboardQuery(StrictSerializer):
    week = IsoWeekField(required=False)
    neighbours = serializers.IntegerField(min_value=0, max_value=10, default=2)

    def validate_week(self, value: str) -> str:
        try:
            if not WEEK.fullmatch(value):
                raise ValueError(value)
            week_start(value)
        except ValueError:
            raise serializers.ValidationError("Use an ISO week such as 2025-W07.") from None
        return value


class LeaderboardEntryOut(serializers.Serializer):
    rank = serializers.IntegerField()
    userId = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    xp = serializers.IntegerField()
    isMe = serializers.BooleanField()


class LeaderboardOut(serializers.Serializer):
    week = serializers.CharField()
    startsAt = TimestampField()
    endsAt = TimestampField()
    size = serializers.IntegerField()
    top = LeaderboardEntryOut(many=True)
    me = LeaderboardEntryOut(allow_null=True)
    neighbours = LeaderboardEntryOut(many=True)


class SummaryQuery(StrictSerializer):
    days = serializers.IntegerField(min_value=1, max_value=90, default=30)


class GoalsSummaryOut(serializers.Serializer):
    active = GoalOut(many=True)
    completed = GoalOut(many=True)


class SummaryOut(serializers.Serializer):
    userId = serializers.CharField()
    timezone = serializers.CharField()
    streak = StreakOut()
    xp = XpOut()
    achievements = AchievementOut(many=True)
    stats = StatsOut()
    goals = GoalsSummaryOut()
    progress = ProgressSummaryOut(many=True)
