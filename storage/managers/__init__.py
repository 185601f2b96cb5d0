"""Redis-backed managers: the only code that reads and writes the storage app's keys."""

from storage.managers.chats import chats
from storage.managers.documents import documents
from storage.managers.messages import messages, votes
from storage.managers.users import tokens, users

__all__ = ["chats", "documents", "messages", "tokens", "users", "votes"]
