"""The gamification REST API (``/api/gamification/``): thin views over the managers.

Everything is the calling learner's own: another user's goal or progress is a 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gamification import serializers as s
from gamification.managers import activity, engine, goals, leaderboard, progress, stats, streaks, summary
from gamification.managers.summary import user_achievements
from mookti.api.inputs import path_id, query, validated
from mookti.api.schema import errors
from mookti.errors import NotFound
from storage.api.permissions import IsMooktiUser, actor_id
from storage.managers import users


def current_user(request: Request) -> dict[str, Any]:
    user = users.get(actor_id(request))
    if user is None:
        raise NotFound("user")
    return user


@contextmanager
def counted_write(request: Request) -> Iterator[dict[str, Any]]:
    """The learner of a gamification write within the write rate limit (a 429 past it); the
    write counts once it succeeded."""
    user_id = actor_id(request)
    engine.check_write_rate(user_id)
    yield current_user(request)
    engine.count_write(user_id)


class StreakView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(
        responses=s.StreakOut, operation_id="getStreak", summary="The learner's streak, and whether it is alive today"
    )
    def get(self, request: Request) -> Response:
        return Response(s.StreakOut(streaks.get(current_user(request))).data)


class ActivityView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(
        request=s.ActivityIn,
        responses={201: s.ActivityOut, 200: s.ActivityOut, **errors(429)},
        operation_id="recordActivity",
        summary="Record a learning activity (200: a retry of an activity id already counted)",
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ActivityIn, request.data)
        with counted_write(request) as user:
            if data.get("timezone") and data["timezone"] != user["timezone"]:
                user = users.update(user["id"], {"timezone": data["timezone"]})  # the device moved: re-detected zone
            result = activity.record(
                user,
                data["type"],
                occurred_at=data.get("occurredAt"),
                minutes=data["minutes"],
                activity_id=data.get("id"),
            )
        code = status.HTTP_201_CREATED if result["counted"] else status.HTTP_200_OK
        return Response(s.ActivityOut(result).data, status=code)


class StatsView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(
        parameters=[s.StatsQuery], responses=s.StatsOut, operation_id="getStats", summary="Daily stats of a date range"
    )
    def get(self, request: Request) -> Response:
        params = query(request, s.StatsQuery)
        return Response(s.StatsOut(stats.range(current_user(request), params.get("from"), params.get("to"))).data)


class LeaderboardView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(
        parameters=[s.LeaderboardQuery],
        responses=s.LeaderboardOut,
        operation_id="getLeaderboard",
        summary="Weekly XP leaderboard",
    )
    def get(self, request: Request) -> Response:
        params = query(request, s.LeaderboardQuery)
        board = leaderboard.weekly(actor_id(request), params.get("week"), neighbours=params["neighbours"])
        return Response(s.LeaderboardOut(board).data)


class AchievementsView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(
        responses=s.AchievementOut(many=True),
        operation_id="getAchievements",
        summary="All achievements, with the learner's awards",
    )
    def get(self, request: Request) -> Response:
        return Response(s.AchievementOut(user_achievements(actor_id(request)), many=True).data)


class SummaryView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(
        parameters=[s.SummaryQuery],
        responses=s.SummaryOut,
        operation_id="getSummary",
        summary="Everything, for a dashboard",
    )
    def get(self, request: Request) -> Response:
        params = query(request, s.SummaryQuery)
        return Response(s.SummaryOut(summary(actor_id(request), params["days"])).data)


class GoalViewSet(viewsets.ViewSet):
    permission_classes = [IsMooktiUser]
    lookup_value_regex = "[^/]+"

    @extend_schema(parameters=[s.GoalListQuery], responses=s.GoalListOut, operation_id="getGoals")
    def list(self, request: Request) -> Response:
        params = query(request, s.GoalListQuery)
        found = goals.list(actor_id(request), params["status"], params["limit"])
        return Response({"goals": s.GoalOut(found, many=True).data})

    @extend_schema(request=s.GoalCreateIn, responses={201: s.GoalOut, **errors(409, 429)}, operation_id="createGoal")
    def create(self, request: Request) -> Response:
        with counted_write(request) as user:
            data = validated(s.GoalCreateIn, request.data, timezone=user["timezone"])
            goal = goals.create(user, data)
        return Response(s.GoalOut(goal).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.GoalOut, operation_id="getGoal")
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.GoalOut(goals.get(actor_id(request), path_id(pk))).data)

    @extend_schema(request=s.GoalUpdateIn, responses={200: s.GoalOut, **errors(409, 429)}, operation_id="updateGoal")
    def partial_update(self, request: Request, pk: str) -> Response:
        goal_id = path_id(pk)
        with counted_write(request) as user:
            changes = validated(s.GoalUpdateIn, request.data, timezone=user["timezone"])
            goal = goals.update(user, goal_id, changes)
        return Response(s.GoalOut(goal).data)

    @extend_schema(responses={204: None, **errors(409, 429)}, operation_id="deleteGoal")
    def destroy(self, request: Request, pk: str) -> Response:
        goal_id = path_id(pk)
        with counted_write(request) as user:
            goals.delete(user["id"], goal_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProgressViewSet(viewsets.ViewSet):
    """Learning progress per path (``pathId``) and module."""

    permission_classes = [IsMooktiUser]
    lookup_value_regex = "[^/]+"

    @extend_schema(responses=s.ProgressListOut, operation_id="getProgressPaths")
    def list(self, request: Request) -> Response:
        return Response({"paths": s.ProgressSummaryOut(progress.list(actor_id(request)), many=True).data})

    @extend_schema(responses=s.ProgressOut, operation_id="getProgress")
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.ProgressOut(progress.get(actor_id(request), path_id(pk, "pathId"))).data)

    @extend_schema(
        request=s.ProgressIn,
        responses={200: s.ProgressOut, **errors(409, 429)},
        operation_id="putProgress",
        summary="Replace a path's progress",
    )
    def update(self, request: Request, pk: str) -> Response:
        path = path_id(pk, "pathId")
        data = validated(s.ProgressIn, request.data)
        with counted_write(request) as user:
            saved = progress.put(user, path, data)
        return Response(s.ProgressOut(saved).data)

    @extend_schema(
        request=s.ProgressIn,
        responses={200: s.ProgressOut, **errors(409, 429)},
        operation_id="syncProgress",
        summary="Merge an offline client's progress",
    )
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str) -> Response:
        path = path_id(pk, "pathId")
        data = validated(s.ProgressIn, request.data)
        with counted_write(request) as user:
            saved = progress.sync(user, path, data)
        return Response(s.ProgressOut(saved).data)
