"""The stored entities of the storage app, one dataclass each (field names as stored and as the API shows them)."""

from __future__ import annotations

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


@dataclass(slots=True)
class Message(Entity):
    """``chat:{chatId}:message:{id}`` HASH; ``parts``/``attachments`` are AI SDK UI JSON.

    The text is stored once: ``content`` is kept only when it is not the text of ``parts``
    (a client may send its own); otherwise the field is absent (or empty) and derived on read.
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
        if self.content == text_of(self.parts):
            del mapping["content"]
        return mapping

    @classmethod
    def decode(cls, raw: dict[str, str] | None) -> Message | None:
        message = Entity.decode.__func__(cls, raw)  # type: ignore[attr-defined]
        if message is not None and not message.content:
            message.content = text_of(message.parts)
        return message


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
