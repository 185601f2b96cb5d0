"""The one way to publish a live update.

An event is appended to the user's replay stream ``user:{uid}:events`` (the stream id is the
event id) in the same MULTI/EXEC as the change that caused it, then the channel layer is
poked so connected websockets get it at once. The poke is best effort: a client that missed
it catches up from the stream (``replay``). A channel-layer failure never fails the write.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from mookti.redis import Write, key

logger = logging.getLogger(__name__)


def events_key(user_id: str) -> str:
    """STREAM of a user's events (replay log, approximately capped)."""
    return key(f"user:{{{user_id}}}:events")


def user_group(user_id: str) -> str:
    return f"user.{user_id}"


def chat_group(chat_id: str) -> str:
    return f"chat.{chat_id}"


def stage(
    write: Write,
    user_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    chat_id: str | None = None,
    public: bool = False,
) -> int:
    """Append the event to ``write`` and notify listeners once the write is applied.

    ``public`` also sends it to the viewers of a public chat (``chat_id``); only put data
    there that anyone who can read the chat may see.
    """
    fields = {"type": event_type, "data": json.dumps(data, separators=(",", ":"))}
    if chat_id:
        fields["chatId"] = chat_id
    index = write.step(
        lambda p: p.xadd(events_key(user_id), fields, maxlen=settings.MOOKTI_EVENTS_MAXLEN, approximate=True)
    )
    write.on_commit(lambda replies: notify(user_id, replies[index][0], event_type, data, chat_id if public else None))
    return index


def publish(
    user_id: str, event_type: str, data: dict[str, Any], *, chat_id: str | None = None, public: bool = False
) -> str:
    """Publish an event on its own (not part of a larger write); returns its id."""
    write = Write()
    stage(write, user_id, event_type, data, chat_id=chat_id, public=public)
    return write.execute()[0][0]


def frame(event_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "data": data}


def notify_chat(chat_id: str, user_id: str, event_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Poke only the viewers of a public chat (the owner's stream has the event already)."""
    _send(chat_group(chat_id), {"type": "event.message", "event": frame(event_id, event_type, data), "userId": user_id})


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:
        logger.warning("channel layer unavailable, event stays in the replay log: %s", exc)


def notify(
    user_id: str, event_id: str, event_type: str, data: dict[str, Any], public_chat_id: str | None = None
) -> None:
    """Poke the channel layer; errors are logged, never raised."""
    message = {"type": "event.message", "event": frame(event_id, event_type, data)}
    _send(user_group(user_id), message)
    if public_chat_id:
        _send(chat_group(public_chat_id), {**message, "userId": user_id})
