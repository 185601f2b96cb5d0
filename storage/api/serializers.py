"""Validation (input) and JSON shape (output) of the storage API: camelCase, ISO-8601 UTC."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mookti.api.fields import IdField, OutputSerializer, StrictSerializer, TimestampField, TimezoneField
from mookti.errors import PayloadTooLarge
from mookti.ids import is_valid_id
from storage.api.schema import ATTACHMENT_SCHEMA, MESSAGE_PART_SCHEMA
from storage.entities import Chat, Document, Message, Stream, Suggestion, User, Vote
from storage.entities.base import Entity
from storage.managers.chats import VISIBILITIES
from storage.managers.documents import KINDS
from storage.managers.messages import ROLES
from storage.managers.users import USER_TYPES

MAX_BATCH = 100
MAX_TITLE = 500


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _output_field(name: str, kind: str) -> serializers.Field:
    optional = kind.endswith("| None")
    if kind.startswith("int") and name.endswith("At"):
        return TimestampField(allow_null=optional)
    simple = {"int": serializers.IntegerField, "bool": serializers.BooleanField}
    structured = {"dict": serializers.DictField, "list": serializers.ListField}
    for prefix, field in {**simple, **structured}.items():
        if kind.startswith(prefix):
            return field()
    return serializers.CharField(allow_null=optional)


def entity_out(name: str, entity: type[Entity], **typed: serializers.Field) -> type[serializers.Serializer]:
    """The output serializer of a stored entity: its public fields, in its order, timestamps
    (``...At``) as ISO-8601, so the field list lives in one place (``storage.entities``);
    ``typed`` gives the fields whose values are narrower than their Python type (enums, parts)."""
    fields = {
        field: typed.get(field) or _output_field(field, kind)
        for field, kind in entity.kinds()
        if field not in entity.PRIVATE
    }
    return type(name, (OutputSerializer,), {"__module__": __name__, **fields})


@extend_schema_field(MESSAGE_PART_SCHEMA)
class MessagePartField(serializers.DictField):
    """One UI message part: any object with a string ``type`` (ai-chatbot's, or another kind)."""

    default_error_messages = {"type": "A part is an object with a string 'type'."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if not isinstance(value.get("type"), str):
            self.fail("type")
        return value


@extend_schema_field(ATTACHMENT_SCHEMA)
class AttachmentField(serializers.DictField):
    """An attachment: free-form JSON, stored as sent."""


# --- users -------------------------------------------------------------------------------------
UserOut = entity_out("UserOut", User, type=serializers.ChoiceField(USER_TYPES))


class UserUpdateIn(StrictSerializer):
    name = serializers.CharField(max_length=200, allow_blank=True, required=False)
    type = serializers.ChoiceField(USER_TYPES, required=False)
    timezone = TimezoneField(required=False)
    preferences = serializers.DictField(required=False)
    # a password is taken as sent: its spaces count (and "       x" is not a short password)
    password = serializers.CharField(
        min_length=8, max_length=128, required=False, write_only=True, trim_whitespace=False
    )

    def validate_preferences(self, value: dict) -> dict:
        if _json_size(value) > 16 * 1024:
            raise serializers.ValidationError("Preferences are limited to 16 KB of JSON.")
        return value


class UserCreateIn(UserUpdateIn):
    id = IdField(required=False)
    email = serializers.EmailField(max_length=254)

    def validate_email(self, value: str) -> str:
        if any(c in value for c in "{}:") or value.lower().startswith("guest-"):
            raise serializers.ValidationError("Enter a valid email address.")
        return value


class TokenIn(StrictSerializer):
    schema_extra = {"anyOf": [{"required": ["email", "password"]}, {"required": ["userId"]}]}
    email = serializers.EmailField(required=False)
    password = serializers.CharField(required=False, max_length=128, trim_whitespace=False)
    userId = IdField(required=False)
    ttl = serializers.IntegerField(min_value=60, max_value=365 * 24 * 3600, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "userId" not in attrs and not ("email" in attrs and "password" in attrs):
            raise serializers.ValidationError("Send email and password, or userId with the service key.")
        return attrs


class TokenOut(serializers.Serializer):
    token = serializers.CharField()
    userId = serializers.CharField()
    expiresAt = TimestampField()


# --- chats -------------------------------------------------------------------------------------
ChatOut = entity_out("ChatOut", Chat, visibility=serializers.ChoiceField(VISIBILITIES))


class ChatUpdateIn(StrictSerializer):
    title = serializers.CharField(max_length=MAX_TITLE, allow_blank=True, required=False)
    visibility = serializers.ChoiceField(VISIBILITIES, required=False)


class ChatCreateIn(ChatUpdateIn):
    id = IdField(required=False)
    createdAt = TimestampField(required=False)


class PageQuery(StrictSerializer):
    """A keyset page; ``startingAfter`` and ``endingBefore`` exclude each other."""

    mutually_exclusive = (("startingAfter", "endingBefore"),)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
    startingAfter = IdField(required=False)
    endingBefore = IdField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "startingAfter" in attrs and "endingBefore" in attrs:
            raise serializers.ValidationError({"endingBefore": ["Use startingAfter or endingBefore, not both."]})
        return attrs


class ChatPageQuery(PageQuery):
    orderBy = serializers.ChoiceField(("createdAt", "lastMessageAt"), default="createdAt")


class ChatPageOut(serializers.Serializer):
    chats = ChatOut(many=True)
    hasMore = serializers.BooleanField()


class StreamIn(StrictSerializer):
    streamId = IdField()


StreamOut = entity_out("StreamOut", Stream)


# --- messages ----------------------------------------------------------------------------------
MessageOut = entity_out(
    "MessageOut",
    Message,
    role=serializers.ChoiceField(ROLES),
    parts=serializers.ListField(child=MessagePartField()),
    attachments=serializers.ListField(child=AttachmentField()),
)


def _check_message_size(attrs: dict[str, Any]) -> None:
    size = sum(_json_size(attrs[name]) for name in ("parts", "attachments") if name in attrs)
    size += len(attrs.get("content", "").encode())
    if size > settings.MOOKTI_MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(
            f"A message is limited to {settings.MOOKTI_MAX_MESSAGE_BYTES} bytes of parts, attachments and content.",
            {"parts": ["too large"]},
        )


class MessageUpdateIn(StrictSerializer):
    schema_extra = {"minProperties": 1}
    parts = serializers.ListField(child=MessagePartField(), max_length=1000, required=False)
    attachments = serializers.ListField(child=AttachmentField(), max_length=100, required=False)
    content = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send parts, attachments or content.")
        _check_message_size(attrs)
        return attrs


class MessageIn(MessageUpdateIn):
    schema_extra = {"anyOf": [{"required": ["parts"]}, {"required": ["content"]}]}
    id = IdField(required=False)
    chatId = IdField()
    role = serializers.ChoiceField(ROLES)
    createdAt = TimestampField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "parts" not in attrs and "content" not in attrs:
            raise serializers.ValidationError({"parts": ["Send parts (or content)."]})
        attrs.setdefault("parts", [{"type": "text", "text": attrs.get("content", "")}])
        _check_message_size(attrs)
        return attrs


class MessagesIn(StrictSerializer):
    schema_extra = {"x-unique-by": {"messages": "id"}}  # ids are unique within a batch
    messages = MessageIn(many=True, allow_empty=False, max_length=MAX_BATCH)

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [m["id"] for m in value if "id" in m]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("Message ids must be unique.")
        return value


_MESSAGE_FIELDS = frozenset(MessageIn._declared_fields)
_CREATED_AT = TimestampField(required=False)


def quick_messages(data: Any) -> list[dict[str, Any]] | None:
    """What ``MessagesIn`` validates a saveMessages body to (a batch, or one message as a batch of
    one), checked without building serializers, when the body is in its plain form: known
    fields, ids and roles as they must be, parts and attachments lists of objects (parts with a
    string ``type``), text ``content`` without NUL, a ``createdAt`` the field takes, unique ids,
    within the size limits. Anything else is None: the serializer judges it (and answers the 400
    or 413). Building DRF's nested serializers per request was a fifth of a post's CPU (issue 16);
    ``tests/storage/test_hot_reads.py`` checks the two agree."""
    if type(data) is dict and "messages" in data:
        if len(data) != 1:
            return None
        items = data["messages"]
        if type(items) is not list or not 1 <= len(items) <= MAX_BATCH:
            return None
    else:
        items = [data]
    out, ids = [], set()
    for item in items:
        message = _quick_message(item)
        if message is None:
            return None
        if "id" in message:
            if message["id"] in ids:
                return None
            ids.add(message["id"])
        out.append(message)
    return out


def _quick_message(item: Any) -> dict[str, Any] | None:
    if type(item) is not dict or not item.keys() <= _MESSAGE_FIELDS:
        return None
    chat_id, role = item.get("chatId"), item.get("role")
    if not is_valid_id(chat_id) or type(role) is not str or role not in ROLES:
        return None
    message: dict[str, Any] = {"chatId": chat_id, "role": role}
    if "id" in item:
        if not is_valid_id(item["id"]):
            return None
        message["id"] = item["id"]
    if "content" in item:
        content = item["content"]
        if type(content) is not str or "\x00" in content:
            return None
        message["content"] = content
    for name, limit in (("parts", 1000), ("attachments", 100)):
        if name in item:
            values = item[name]
            if type(values) is not list or len(values) > limit or any(type(v) is not dict for v in values):
                return None
            if name == "parts" and any(type(v.get("type")) is not str for v in values):
                return None
            message[name] = values
    if "createdAt" in item:
        try:
            message["createdAt"] = _CREATED_AT.to_internal_value(item["createdAt"])
        except serializers.ValidationError:
            return None
    if "parts" not in message:
        if "content" not in message:
            return None
        message["parts"] = [{"type": "text", "text": message["content"]}]
    try:
        _check_message_size(message)
    except PayloadTooLarge:
        return None
    return message


class MessagePageQuery(PageQuery):
    chatId = IdField()
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)


class MessagePageOut(serializers.Serializer):
    messages = MessageOut(many=True)
    hasMore = serializers.BooleanField()


class DeleteAfterQuery(StrictSerializer):
    chatId = IdField()
    timestamp = TimestampField()


class CountQuery(StrictSerializer):
    hours = serializers.IntegerField(min_value=1, max_value=24 * 30, default=24)


class VoteIn(StrictSerializer):
    chatId = IdField()
    messageId = IdField()
    type = serializers.ChoiceField(("up", "down"))


VoteOut = entity_out("VoteOut", Vote)


class ChatIdQuery(StrictSerializer):
    chatId = IdField()


# --- documents ---------------------------------------------------------------------------------
DocumentOut = entity_out("DocumentOut", Document, kind=serializers.ChoiceField(KINDS))


class DocumentSummaryOut(serializers.Serializer):
    id = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.ChoiceField(KINDS)
    createdAt = TimestampField()
    updatedAt = TimestampField()


@extend_schema_field(
    {
        "type": "string",
        "format": "binary",
        "description": "A PDF or a UTF-8 text file; its text becomes the version's content.",
        "x-content-types": ["application/pdf", "text/plain; charset=utf-8"],
    }
)
class UploadField(serializers.FileField):
    """A document upload (multipart): a PDF or UTF-8 text; an empty file is an empty version."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_empty_file=True, **kwargs)


class DocumentIn(StrictSerializer):
    id = IdField(required=False)
    title = serializers.CharField(max_length=MAX_TITLE)
    kind = serializers.ChoiceField(KINDS, default="text")
    content = serializers.CharField(allow_blank=True, allow_null=True, required=False, trim_whitespace=False)
    file = UploadField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        upload = attrs.pop("file", None)
        if upload is not None:
            from storage.api.documents_text import extract_text

            attrs["content"] = extract_text(upload)
        content = attrs.get("content") or ""
        if len(content.encode()) > settings.MOOKTI_MAX_DOCUMENT_BYTES:
            raise PayloadTooLarge(
                f"A document version is limited to {settings.MOOKTI_MAX_DOCUMENT_BYTES} bytes.",
                {"content": ["too large"]},
            )
        return attrs


class DocumentJsonIn(DocumentIn):
    """saveDocument's JSON body: a file comes as multipart only (schema only; views validate DocumentIn)."""

    file = None


class DocumentPageOut(serializers.Serializer):
    documents = DocumentSummaryOut(many=True)
    hasMore = serializers.BooleanField()


class TimestampQuery(StrictSerializer):
    timestamp = TimestampField(required=False)


class DeletedCountOut(serializers.Serializer):
    deletedCount = serializers.IntegerField(min_value=0)


class DeletedMessagesOut(DeletedCountOut):
    deletedIds = serializers.ListField(child=serializers.CharField())


class MessageCountOut(serializers.Serializer):
    count = serializers.IntegerField(min_value=0, help_text="The user's messages (role user) in the last `hours`.")
    hours = serializers.IntegerField(min_value=1)


class SuggestionIn(StrictSerializer):
    id = IdField(required=False)
    originalText = serializers.CharField(max_length=100_000, trim_whitespace=False)
    suggestedText = serializers.CharField(max_length=100_000, trim_whitespace=False)
    description = serializers.CharField(max_length=10_000, allow_blank=True, allow_null=True, required=False)
    documentCreatedAt = TimestampField(required=False, existing=True)
    isResolved = serializers.BooleanField(required=False)


class SuggestionsIn(StrictSerializer):
    suggestions = SuggestionIn(many=True, allow_empty=False, max_length=MAX_BATCH)


SuggestionOut = entity_out("SuggestionOut", Suggestion)
