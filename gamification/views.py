"""The gamification REST API (``/api/gamification/``): thin views over the managers.

Everything is the calling learner's own: another user's goal or progress is a 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gamification import serializers as s
from gamification.managers import activity, goals, leaderboard, progress, stats, streaks, summary
from gamification.managers.summary import achievements_of
from mookti.api.inputs import path_id, query, validated
from mookti.errors import NotFound
from storage.api.permissions import IsMooktiUser, actor_id
from storage.managers import users


def current_user(request: Request) -> dict[str, Any]:
    user = users.get(actor_id(request))
    if user is None:
        raise NotFound("user")
    return user


class StreakView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(responses=s.StreakOut, summary="The learner's streak, and whether it is alive today")
    def get(self, request: Request) -> Response:
        return Response(s.StreakOut(streaks.get(current_user(request))).data)


class ActivityView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(
        request=s.ActivityIn,
        responses={201: s.ActivityOut, 200: s.ActivityOut},
        summary="Record a learning activity (200: a retry of an activity id already counted)",
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ActivityIn, request.data)
        user = current_user(request)
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

    @extend_schema(parameters=[s.StatsQuery], responses=s.StatsOut, summary="Daily stats of a date range")
    def get(self, request: Request) -> Response:
        params = query(request, s.StatsQuery)
        return Response(s.StatsOut(stats.range(current_user(request), params.get("from"), params.get("to"))).data)


class LeaderboardView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(parameters=[s.LeaderboardQuery], responses=s.LeaderboardOut, summary="Weekly XP leaderboard")
    def get(self, request: Request) -> Response:
        params = query(request, s.LeaderboardQuery)
        board = leaderboard.weekly(actor_id(request), params.get("week"), neighbours=params["neighbours"])
        return Response(s.LeaderboardOut(board).data)


class AchievementsView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(responses=s.AchievementOut(many=True), summary="All achievements, with the learner's awards")
    def get(self, request: Request) -> Response:
        return Response(s.AchievementOut(achievements_of(actor_id(request)), many=True).data)


class SummaryView(APIView):
    permission_classes = [IsMooktiUser]

    @extend_schema(parameters=[s.SummaryQuery], responses=s.SummaryOut, summary="Everything, for a dashboard")
    def get(self, request: Request) -> Response:
        params = query(request, s.SummaryQuery)
        return Response(s.SummaryOut(summary(actor_id(request), params["days"])).data)


class GoalViewSet(viewsets.ViewSet):
    permission_classes = [IsMooktiUser]
    lookup_value_regex = "[^/]+"

    @extend_schema(parameters=[s.GoalListQuery], responses=s.GoalListOut)
    def list(self, request: Request) -> Response:
        params = query(request, s.GoalListQuery)
        found = goals.list(actor_id(request), params["status"], params["limit"])
        return Response({"goals": s.GoalOut(found, many=True).data})

    @extend_schema(request=s.GoalCreateIn, responses={201: s.GoalOut})
    def create(self, request: Request) -> Response:
        user = current_user(request)
        data = validated(s.GoalCreateIn, request.data, timezone=user["timezone"])
        return Response(s.GoalOut(goals.create(user, data)).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.GoalOut)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.GoalOut(goals.get(actor_id(request), path_id(pk))).data)

    @extend_schema(request=s.GoalUpdateIn, responses=s.GoalOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        goal_id = path_id(pk)
        user = current_user(request)
        changes = validated(s.GoalUpdateIn, request.data, timezone=user["timezone"])
        return Response(s.GoalOut(goals.update(user, goal_id, changes)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        goals.delete(actor_id(request), path_id(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProgressViewSet(viewsets.ViewSet):
    """Learning progress per path (``pathId``) and module."""

    permission_classes = [IsMooktiUser]
    lookup_value_regex = "[^/]+"

    @extend_schema(responses=s.ProgressListOut)
    def list(self, request: Request) -> Response:
        return Response({"paths": s.ProgressSummaryOut(progress.list(actor_id(request)), many=True).data})

    @extend_schema(responses=s.ProgressOut)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.ProgressOut(progress.get(actor_id(request), path_id(pk, "pathId"))).data)

    @extend_schema(request=s.ProgressIn, responses=s.ProgressOut, summary="Replace a path's progress")
    def update(self, request: Request, pk: str) -> Response:
        path = path_id(pk, "pathId")
        data = validated(s.ProgressIn, request.data)
        return Response(s.ProgressOut(progress.put(current_user(request), path, data)).data)

    @extend_schema(request=s.ProgressIn, responses=s.ProgressOut, summary="Merge an offline client's progress")
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str) -> Response:
        path = path_id(pk, "pathId")
        data = validated(s.ProgressIn, request.data)
        return Response(s.ProgressOut(progress.sync(current_user(request), path, data)).data)
