"""The stored entities of the storage app, one dataclass each (field names as stored and as the API shows them)."""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from storage.entities.base import Entity


@dataclass(slots=True)
class User(Entity):
    """``user:{id}`` HASH; ``password`` is a Django password hash ('' for none), never shown."""

    PRIVATE = ("password",)

    id: str
    email: str = ""
    name: str = ""
    type: str = "free"
    isGuest: bool = False
    timezone: str = "UTC"
    preferences: dict[str, Any] = field(default_factory=dict)
    createdAt: int = 0
    password: str = ""


@dataclass(slots=True)
class Token(Entity):
    """``token:{digest}`` HASH (the key EXPIREs with the token); ``id`` is the digest, not stored."""

    userId: str
    createdAt: int = 0
    expiresAt: int = 0


@dataclass(slots=True)
class Chat(Entity):
    """``chat:{id}`` HASH; ``lastMessageAt`` is absent until the first message."""

    id: str
    userId: str = ""
    title: str = ""
    visibility: str = "private"
    createdAt: int = 0
    lastMessageAt: int | None = None

    def encode(self) -> dict[str, str]:
        """A chat without messages has no ``lastMessageAt`` field at all."""
        mapping = Entity.encode(self)
        if self.lastMessageAt is None:
            del mapping["lastMessageAt"]
        return mapping


def text_of(parts: list[Any]) -> str:
    """Plain text of AI SDK UI parts: the text of every ``{"type": "text"}`` part."""
    texts = [p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(t for t in texts if isinstance(t, str))


# Texts (or parts JSON) at least this long are stored deflated when that is shorter (Base85, as the
# client reads replies as UTF-8): a 1 KB text would otherwise fill a 1280-byte allocation.
PACK_FROM = 128
# Where a message's parts live in its hash, one of: ``text`` / ``ztext`` (the parts are one text
# part: its text, plain or packed), ``parts`` / ``zparts`` (any other parts: JSON, plain or packed).
PARTS_FIELDS = ("parts", "zparts", "text", "ztext")


def pack(value: str) -> str | None:
    """``value`` deflated and Base85-encoded, or None when that is not shorter."""
    raw = value.encode()
    if len(raw) < PACK_FROM:
        return None
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = base64.b85encode(deflate.compress(raw) + deflate.flush()).decode()
    return packed if len(packed) < len(raw) else None


def unpack(value: str) -> str:
    return zlib.decompress(base64.b85decode(value), -15).decode()


@dataclass(slots=True)
class Message(Entity):
    """``chat:{chatId}:message:{id}`` HASH; ``parts``/``attachments`` are AI SDK UI JSON.

    Stored compactly (:meth:`encode`): ``id`` and ``chatId`` are in the key name, not the hash
    (:meth:`stored` puts them back); empty ``attachments`` are left out; the parts are one of
    :data:`PARTS_FIELDS` (a single text part is kept as its text; long values deflated). The text
    is stored once: ``content`` is kept only when it is not the text of ``parts`` (a client may send
    its own). Hashes written before (``id``, ``chatId``, ``parts`` and ``attachments`` always
    present) decode the same.
    """

    id: str
    chatId: str = ""
    role: str = "user"
    parts: list[Any] = field(default_factory=list)
    attachments: list[Any] = field(default_factory=list)
    content: str = ""
    createdAt: int = 0

    def encode(self) -> dict[str, str]:
        mapping = Entity.encode(self)
        del mapping["id"], mapping["chatId"], mapping["parts"]
        if not self.attachments:
            del mapping["attachments"]
        if self.content == text_of(self.parts):
            del mapping["content"]
        return {**self.parts_fields(self.parts), **mapping}

    @staticmethod
    def parts_fields(parts: list[Any]) -> dict[str, str]:
        """The hash field (one of :data:`PARTS_FIELDS`) that holds these parts."""
        if len(parts) == 1 and isinstance(parts[0], dict) and parts[0].keys() == {"type", "text"}:
            text = parts[0]["text"]
            if parts[0]["type"] == "text" and isinstance(text, str):
                packed = pack(text)
                return {"ztext": packed} if packed is not None else {"text": text}
        value = json.dumps(parts, separators=(",", ":"))
        packed = pack(value)
        return {"zparts": packed} if packed is not None else {"parts": value}

    @classmethod
    def decode(cls, raw: dict[str, str] | None) -> Message | None:
        if raw and "parts" not in raw:
            raw = dict(raw)
            if "zparts" in raw:
                raw["parts"] = unpack(raw["zparts"])
            elif "text" in raw or "ztext" in raw:
                text = raw["text"] if "text" in raw else unpack(raw["ztext"])
                raw["parts"] = json.dumps([{"type": "text", "text": text}])
        message = Entity.decode.__func__(cls, raw)  # type: ignore[attr-defined]
        if message is not None and not message.content:
            message.content = text_of(message.parts)
        return message

    @classmethod
    def stored(cls, chat_id: str, message_id: str, raw: dict[str, str] | None) -> dict[str, Any] | None:
        """The API shape of the hash ``chat:{chat_id}:message:{message_id}``, or None when it is gone."""
        if not raw:
            return None
        return cls.view({"id": message_id, "chatId": chat_id, **raw})


@dataclass(slots=True)
class MessageLookup:
    """A field of a ``message-chats:{bucket}`` HASH (message id -> chat and owner), not a hash of its own.

    Two UUIDs (any server id, most client ids) are stored as their 32 bytes in Base85 (40
    characters); other ids as ``chatId/ownerId`` (Base85 has no ``/``), the format the old
    ``message-chat:{id}`` STRINGs hold.
    """

    chatId: str
    ownerId: str

    def encode(self) -> str:
        try:
            ids = [uuid.UUID(self.chatId), uuid.UUID(self.ownerId)]
        except ValueError:
            ids = []
        if ids and [str(i) for i in ids] == [self.chatId, self.ownerId]:  # canonical: decodes to the same
            return base64.b85encode(ids[0].bytes + ids[1].bytes).decode()
        return f"{self.chatId}/{self.ownerId}"

    @classmethod
    def decode(cls, value: str | None) -> MessageLookup | None:
        if not value:
            return None
        if "/" in value:
            chat_id, _, owner_id = value.partition("/")
            return cls(chat_id, owner_id)
        raw = base64.b85decode(value)
        return cls(str(uuid.UUID(bytes=raw[:16])), str(uuid.UUID(bytes=raw[16:])))


@dataclass(slots=True)
class Vote(Entity):
    """A field of ``chat:{chatId}:votes`` (messageId -> up/down), not a hash of its own."""

    chatId: str
    messageId: str
    isUpvoted: bool

    @property
    def stored(self) -> str:
        return "up" if self.isUpvoted else "down"

    @classmethod
    def from_field(cls, chat_id: str, message_id: str, value: str) -> Vote:
        return cls(chat_id, message_id, value == "up")


@dataclass(slots=True)
class Stream(Entity):
    """A member of ``chat:{chatId}:streams`` (score = createdAt), not a hash of its own."""

    id: str
    chatId: str
    createdAt: int


@dataclass(slots=True)
class Document(Entity):
    """One version: ``document:{id}:version:{createdAt}`` HASH (every save is a new version)."""

    id: str
    userId: str = ""
    title: str = ""
    kind: str = "text"
    content: str | None = None
    createdAt: int = 0


@dataclass(slots=True)
class Suggestion(Entity):
    """``document:{documentId}:suggestion:{id}`` HASH, tied to the version ``documentCreatedAt``."""

    id: str
    documentId: str = ""
    documentCreatedAt: int = 0
    originalText: str = ""
    suggestedText: str = ""
    description: str | None = None
    isResolved: bool = False
    userId: str = ""
    createdAt: int = 0
