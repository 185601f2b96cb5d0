"""``POST /api/storage/search``: search over the calling user's data (thin view over storage.search.query)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mookti.api.fields import IdField, StrictSerializer, TimestampField
from mookti.api.inputs import validated
from storage.api.permissions import IsMooktiUser, actor_id
from storage.search import kinds
from storage.search import query as search_service


class QueryText(serializers.CharField):
    """A JSON string only (DRF's CharField would turn 42 or true into text)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class SearchIn(StrictSerializer):
    """A semantic search: the query text and optional filters (unknown fields are rejected)."""

    schema_extra = {"x-ordered": ["from", "to"]}  # from is not after to

    query = QueryText(max_length=search_service.MAX_QUERY_CHARS)
    kinds = serializers.ListField(required=False, allow_empty=False, max_length=20)  # child: in get_fields
    chatId = IdField(required=False)
    role = serializers.ChoiceField(search_service.ROLES, required=False)
    to = TimestampField(required=False)
    topK = serializers.IntegerField(min_value=1, max_value=search_service.MAX_TOP_K, default=10)
    includeLearning = serializers.BooleanField(default=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = TimestampField(required=False)  # a Python keyword, so not a class attribute
        # the kinds the apps registered, read when the schema or a request is built (an enum)
        fields["kinds"].child = serializers.ChoiceField(kinds.names())
        fields["kinds"].child.bind(field_name="", parent=fields["kinds"])
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "from" in attrs and "to" in attrs and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"from": ["Must not be after to."]})
        return attrs


class SearchHitOut(serializers.Serializer):
    id = serializers.CharField(help_text="Vector id: msg:{chatId}#{messageId} or doc:{documentId}#{chunk}.")
    messageId = serializers.CharField(allow_null=True)
    chunk = serializers.IntegerField(allow_null=True)
    role = serializers.ChoiceField(search_service.ROLES, allow_null=True)
    snippet = serializers.CharField()
    score = serializers.FloatField(help_text="Cosine similarity plus a bounded keyword bonus; higher is closer.")
    createdAt = TimestampField(allow_null=True)


class SearchGroupOut(serializers.Serializer):
    type = serializers.CharField(help_text="chat, document, learning, or another registered kind's group.")
    id = serializers.CharField()
    chatId = serializers.CharField(allow_null=True)
    documentId = serializers.CharField(allow_null=True)
    namespace = serializers.CharField(allow_null=True)
    source = serializers.CharField(allow_null=True, help_text="Learning content: the file or id it was loaded from.")
    title = serializers.CharField(allow_blank=True)
    score = serializers.FloatField()
    snippet = serializers.CharField()
    createdAt = TimestampField(allow_null=True)
    hits = SearchHitOut(many=True)


class SearchOut(serializers.Serializer):
    query = serializers.CharField()
    results = SearchGroupOut(many=True)


class SearchView(APIView):
    """Semantic search: the calling user's chats and documents (plus shared learning content when asked)."""

    permission_classes = [IsMooktiUser]

    @extend_schema(
        request=SearchIn,
        responses=SearchOut,
        operation_id="searchUserData",
        summary="Semantic search over the user's conversations and documents",
    )
    def post(self, request: Request) -> Response:
        data = validated(SearchIn, request.data)
        kinds = list(data.get("kinds") or [])
        result = search_service.search(
            actor_id(request),  # type: ignore[arg-type]
            data["query"],
            kinds=kinds or None,
            chat_id=data.get("chatId"),
            role=data.get("role"),
            from_=data.get("from"),
            to=data.get("to"),
            top_k=data["topK"],
            include_learning=data["includeLearning"],
        )
        return Response(SearchOut(result).data)
