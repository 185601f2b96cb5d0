"""Resumable AI responses over HTTP: producers append and end, readers follow as server-sent events.

``GET /api/storage/stream/{id}?resumeAt=N`` answers ``text/event-stream``: one event per chunk
(``id:`` the position to resume at after it, ``data:`` the chunk as a JSON string), then
``event: end`` with the final status, then the response closes. While nothing arrives a comment
line keeps the connection open. A stream that ended and whose buffer expired is a 422 (as
resumable-stream answers "already done"); an unknown one a 404.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mookti.api.fields import StrictSerializer, TimestampField
from mookti.api.inputs import path_id, query, validated
from mookti.api.schema import errors
from storage.api.permissions import IsMooktiUser, actor_id
from storage.managers.streams import END_STATUSES, STATUSES, Located, streams

ACTIVE_STATUSES = ("none", *STATUSES)  # a chat without a stream: "none"
# One server-sent event as the schema shows it (per event, as SSE readers parse them): a chunk
# (``id`` the position to resume at, ``data`` the chunk as a JSON string), or the end.
EVENT_STREAM = {
    "type": "object",
    "description": "`id: <position>` + `data: <chunk as JSON>` per chunk, then `event: end` + "
    '`data: {"status": ...}`; `:` comment lines keep the connection open.',
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "enum": ["end"]},
        "data": {"type": "string"},
    },
    "required": ["data"],
}


def _max(name: str) -> int:
    return int(settings.MOOKTI_STREAMS[name])


class ChunkField(serializers.CharField):
    """One chunk of text, limited in UTF-8 bytes (``MOOKTI_STREAM_MAX_CHUNK_BYTES``)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("A chunk is a string.")
        value = super().to_internal_value(data)
        if len(value.encode()) > _max("MAX_CHUNK_BYTES"):
            raise serializers.ValidationError(f"A chunk is limited to {_max('MAX_CHUNK_BYTES')} bytes.")
        return value


class ChunksIn(StrictSerializer):
    seq = serializers.IntegerField(
        min_value=0, max_value=2**53 - 1, help_text="The batch number: 0, 1, 2, ... (a repeat is a no-op)"
    )
    chunks = serializers.ListField(child=ChunkField(), allow_empty=True)

    def validate_chunks(self, value: list[str]) -> list[str]:
        if len(value) > _max("MAX_BATCH"):
            raise serializers.ValidationError(f"At most {_max('MAX_BATCH')} chunks per batch.")
        return value


class ChunksOut(serializers.Serializer):
    streamId = serializers.CharField()
    position = serializers.IntegerField(help_text="Chunks in the buffer after this batch")
    duplicate = serializers.BooleanField(help_text="True when this batch number was applied before")


class EndIn(StrictSerializer):
    status = serializers.ChoiceField(END_STATUSES, default="done")


class EndOut(serializers.Serializer):
    streamId = serializers.CharField()
    status = serializers.ChoiceField(STATUSES)
    position = serializers.IntegerField()


class ResumeQuery(StrictSerializer):
    resumeAt = serializers.IntegerField(min_value=0, default=0)


class ActiveOut(serializers.Serializer):
    chatId = serializers.CharField()
    streamId = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(ACTIVE_STATUSES)
    position = serializers.IntegerField()
    createdAt = TimestampField(required=False)
    lastActivityAt = TimestampField(required=False)
    endedAt = TimestampField(required=False, allow_null=True)


class StreamChunksView(APIView):
    """Append a batch of chunks to the caller's stream (one Redis round trip)."""

    permission_classes = [IsMooktiUser]

    @extend_schema(
        request=ChunksIn,
        responses={200: ChunksOut, **errors(409)},
        operation_id="appendStreamChunks",
        summary="Append chunks to a resumable stream",
    )
    def post(self, request: Request, stream_id: str) -> Response:
        data = validated(ChunksIn, request.data)
        result = streams.append(actor_id(request), path_id(stream_id, "streamId"), data["seq"], data["chunks"])
        return Response(ChunksOut(result).data)


class StreamEndView(APIView):
    """Mark the caller's stream done or failed; followers get the end and close."""

    permission_classes = [IsMooktiUser]

    @extend_schema(
        request=EndIn,
        responses={200: EndOut, **errors(409)},
        operation_id="endStream",
        summary="End a resumable stream",
    )
    def post(self, request: Request, stream_id: str) -> Response:
        data = validated(EndIn, request.data)
        return Response(EndOut(streams.end(actor_id(request), path_id(stream_id, "streamId"), data["status"])).data)


class EventStreamRenderer(BaseRenderer):
    """Lets ``Accept: text/event-stream`` through content negotiation; errors stay JSON (the
    body and its ``Content-Type``), as the schema documents them for every operation."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Type"] = "application/json"
        return json.dumps(data).encode()


class StreamReadView(APIView):
    """Follow a stream from a position: buffered chunks, then live ones, until it ends."""

    permission_classes = [AllowAny]  # the chat's owner, or anyone for a public chat (checked on open)
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        parameters=[ResumeQuery],
        responses={
            (200, "text/event-stream"): OpenApiResponse(EVENT_STREAM, description="Server-sent events"),
            **errors(404, 422),
        },
        operation_id="resumeStream",
        summary="Resume a stream (server-sent events)",
    )
    def get(self, request: Request, stream_id: str) -> StreamingHttpResponse:
        start = query(request, ResumeQuery)["resumeAt"]
        located, _ = streams.open(actor_id(request), path_id(stream_id, "streamId"))
        response = StreamingHttpResponse(_events(located, start), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache, no-transform"
        response["X-Accel-Buffering"] = "no"
        return response


async def _events(located: Located, start: int) -> AsyncIterator[bytes]:
    yield b": stream\n\n"  # headers go out at once
    async for item in streams.follow(located, start):
        if item is None:
            yield b": keep-alive\n\n"
        elif isinstance(item, str):
            yield f"event: end\ndata: {json.dumps({'status': item})}\n\n".encode()
        else:
            if item.encoded is None:  # once per batch: every follower handed it shares the bytes
                item.encoded = "".join(
                    f"id: {p}\ndata: {json.dumps(text, ensure_ascii=False)}\n\n" for p, text in item
                ).encode()
            yield item.encoded


class StreamStateOut(serializers.Serializer):
    streamId = serializers.CharField()
    chatId = serializers.CharField()
    status = serializers.ChoiceField(STATUSES)
    position = serializers.IntegerField()
    createdAt = TimestampField()
    lastActivityAt = TimestampField()
    endedAt = TimestampField(allow_null=True)


class StreamStateView(APIView):
    """A stream's state without reading it (resumable-stream's hasExistingStream)."""

    permission_classes = [AllowAny]  # the chat's owner, or anyone for a public chat (checked on open)

    @extend_schema(
        responses={200: StreamStateOut, **errors(404, 422)}, operation_id="getStreamState", summary="Stream state"
    )
    def get(self, request: Request, stream_id: str) -> Response:
        _, meta = streams.open(actor_id(request), path_id(stream_id, "streamId"))
        return Response(StreamStateOut(meta).data)


class ChatActiveView(APIView):
    """The chat's active (most recent) stream: id, status, position, last activity."""

    permission_classes = [AllowAny]  # owner, or anyone for a public chat (checked by the manager)

    @extend_schema(
        responses={200: ActiveOut, **errors(404)},
        operation_id="getActiveStreamByChatId",
        summary="The chat's active stream",
    )
    def get(self, request: Request, chat_id: str) -> Response:
        return Response(ActiveOut(streams.active(actor_id(request), path_id(chat_id))).data)
