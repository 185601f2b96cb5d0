"""The stored entities of the storage app, one dataclass each (field names as stored and as the API shows them)."""

from __future__ import annotations

import base64
import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from storage.entities.base import Entity, load_json


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


# A message's value in its chat's ``message-data`` hash: a short header, then its sections, text last:
#
#     role kind createdAt ["." attachments length] ["," content length] ":" attachments content body
#
# role ``u``/``a``/``s``; kind: the body is ``t`` one text part's text, ``T`` that text packed,
# ``p`` the parts' JSON, ``P`` that JSON packed; createdAt in base 36; lengths in UTF-8 bytes (Lua
# counts bytes), each present only when that section is not empty. A short message's value is its
# text and about 13 bytes.
ROLE_CODES = {"user": "u", "assistant": "a", "system": "s"}
ROLES_BY_CODE = {code: role for role, code in ROLE_CODES.items()}
_HEADER = re.compile(r"([uas])([tTpP])(-?[0-9a-z]+)(?:\.(\d+))?(?:,(\d+))?:")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

# The same format in Lua, for scripts that change a message in place (they keep its role and time):
# ``parse_message(value)`` -> header (role, kind, createdAt), attachments, content, body;
# ``build_message(header, attachments, content, body)`` -> value (:meth:`Message.compose`).
MESSAGE_LUA = """
local function parse_message(value)
  local head, alen, clen, at = string.match(value, '^(%a%a%-?%w+)%.?(%d*),?(%d*):()')
  alen, clen = tonumber(alen) or 0, tonumber(clen) or 0
  return head, string.sub(value, at, at + alen - 1), string.sub(value, at + alen, at + alen + clen - 1),
    string.sub(value, at + alen + clen)
end
local function build_message(head, attachments, content, body)
  if #attachments > 0 then head = head .. '.' .. #attachments end
  if #content > 0 then head = head .. ',' .. #content end
  return head .. ':' .. attachments .. content .. body
end
"""


def _base36(number: int) -> str:
    if number < 0:
        return "-" + _base36(-number)
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _DIGITS[digit] + digits
        if not number:
            return digits


@dataclass(slots=True)
class Message(Entity):
    """A field of ``chat:{chatId}:message-data`` (message id -> :meth:`value`); ``parts`` and
    ``attachments`` are AI SDK UI JSON.

    One value per message (the format above): ``id`` and ``chatId`` are the field and the key; the
    parts are kept as their text when they are one text part, long ones deflated; the text is stored
    once: ``content`` is kept only when it is not the text of ``parts`` (a client may send its own).
    :meth:`from_hash` reads the per-message hashes written before (``repair --fix`` moves them).
    """

    id: str
    chatId: str = ""
    role: str = "user"
    parts: list[Any] = field(default_factory=list)
    attachments: list[Any] = field(default_factory=list)
    content: str = ""
    createdAt: int = 0

    def value(self) -> str:
        """The stored value; KeyError for a role outside :data:`ROLE_CODES` (callers validate it)."""
        kind, body = self.parts_section(self.parts)
        content = self.content if self.content != text_of(self.parts) else ""
        head = ROLE_CODES[self.role] + kind + _base36(self.createdAt)
        return self.compose(head, self.attachments_section(self.attachments), content, body)

    @staticmethod
    def compose(head: str, attachments: str, content: str, body: str) -> str:
        """A value from its header (role, kind, createdAt) and sections (``build_message`` in Lua)."""
        sizes = (f".{len(attachments.encode())}" if attachments else "") + (
            f",{len(content.encode())}" if content else ""
        )
        return f"{head}{sizes}:{attachments}{content}{body}"

    @staticmethod
    def parts_section(parts: list[Any]) -> tuple[str, str]:
        """(kind, body) of these parts: a single text part is its text; long values deflated."""
        if len(parts) == 1 and isinstance(parts[0], dict) and parts[0].keys() == {"type", "text"}:
            text = parts[0]["text"]
            if parts[0]["type"] == "text" and isinstance(text, str):
                packed = pack(text)
                return ("T", packed) if packed is not None else ("t", text)
        value = json.dumps(parts, separators=(",", ":"))
        packed = pack(value)
        return ("P", packed) if packed is not None else ("p", value)

    @staticmethod
    def attachments_section(attachments: list[Any]) -> str:
        """The attachments' section ('' for none)."""
        return json.dumps(attachments, separators=(",", ":")) if attachments else ""

    @classmethod
    def from_value(cls, chat_id: str, message_id: str, value: str) -> Message:
        """The message a :meth:`value` holds; ValueError when it is not one."""
        header = _HEADER.match(value)
        if header is None:
            raise ValueError(f"not a stored message: {value[:40]!r}")
        role, kind, created, attachments_size, content_size = header.groups()
        body = value[header.end() :]
        attachments = content = ""
        if attachments_size or content_size:  # sections measured in bytes
            raw, a, c = body.encode(), int(attachments_size or 0), int(content_size or 0)
            attachments, content, body = raw[:a].decode(), raw[a : a + c].decode(), raw[a + c :].decode()
        if kind in "TP":
            body = unpack(body)
        parts = [{"type": "text", "text": body}] if kind in "tT" else load_json(body)
        return cls(
            message_id,
            chat_id,
            ROLES_BY_CODE[role],
            parts,
            load_json(attachments) if attachments else [],
            content or text_of(parts),
            int(created, 36),
        )

    @classmethod
    def stored(cls, chat_id: str, message_id: str, value: str | None) -> dict[str, Any] | None:
        """The API shape of a stored value, or None when it is gone."""
        if value is None:
            return None
        message = cls.from_value(chat_id, message_id, value)
        return {name: getattr(message, name) for name in cls.public_names()}

    @classmethod
    def from_hash(cls, chat_id: str, message_id: str, raw: dict[str, str]) -> Message | None:
        """A message from the hash ``chat:{chatId}:message:{id}`` written before this layout (its
        parts in one of ``parts``/``zparts``/``text``/``ztext``; older hashes also held ``id`` and
        ``chatId``): what ``repair --fix`` moves into the chat's ``message-data``."""
        if not raw:
            return None
        raw = {**raw, "id": message_id, "chatId": chat_id}
        if "parts" not in raw:
            if "zparts" in raw:
                raw["parts"] = unpack(raw["zparts"])
            elif "text" in raw or "ztext" in raw:
                text = raw["text"] if "text" in raw else unpack(raw["ztext"])
                raw["parts"] = json.dumps([{"type": "text", "text": text}])
        message = Entity.decode.__func__(cls, raw)  # type: ignore[attr-defined]
        if message is not None and not message.content:
            message.content = text_of(message.parts)
        return message


def compact_id(value: str) -> str:
    """A message id as a lookup's field: a canonical UUID as its 16 bytes in Base85 (20 characters),
    any other id behind a ``.`` (no Base85 text and no id starts with one, so the two never meet)."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return "." + value
    return base64.b85encode(parsed.bytes).decode() if str(parsed) == value else "." + value


def expand_id(value: str) -> str:
    """The id :func:`compact_id` stored."""
    return value[1:] if value.startswith(".") else str(uuid.UUID(bytes=base64.b85decode(value)))


@dataclass(slots=True)
class MessageLookup:
    """The value of a ``message-chat-ids:{bucket}`` field (the field: the message id, :func:`compact_id`):
    the message's chat and its owner (an update checks the owner before it writes anything).

    Two UUIDs (any server id, most client ids) are stored as their 32 bytes in Base85 (40
    characters); other ids as ``chatId/ownerId`` (Base85 has no ``/``), the format the lookups
    written before hold too.
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
