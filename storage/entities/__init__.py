"""Typed definitions of the storage app's stored entities, with their Redis encoding."""

from storage.entities.records import (
    Chat,
    Document,
    Message,
    MessageLookup,
    Stream,
    Suggestion,
    Token,
    User,
    Vote,
    compact_id,
    expand_id,
    text_of,
)

__all__ = [
    "Chat",
    "Document",
    "Message",
    "MessageLookup",
    "Stream",
    "Suggestion",
    "Token",
    "User",
    "Vote",
    "compact_id",
    "expand_id",
    "text_of",
]
