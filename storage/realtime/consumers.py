"""``/ws/events/``: a user's live updates, gap-free across reconnects.

Delivery per socket:

1. Authenticate (ticket or bearer subprotocol), accept, join the user's channel-layer group.
2. From then on, pokes from the channel layer only go into a bounded in-memory queue; one
   writer task per socket does all the sending, so a slow client never holds up the channel
   layer or another socket.
3. The writer first replays the stream after ``lastEventId`` (or notes the stream's head),
   then sends queued live events. Each live poke carries the id of the event before it in the
   stream: if that is not the last id this socket sent (a lost, late or reordered poke, a
   full queue), the writer reads the stream from its last id instead. Ids at or below the
   last sent one are dropped, so there are neither gaps nor duplicates.
4. Heartbeats cost Redis nothing. A revoked token (or a deleted user) closes the socket with
   4401 through a poke on the user's group (:func:`mookti.events.close_sockets`), and the
   token's expiry, known since the connect, closes it on time. As a safety net for a poke that
   never came, every ``MOOKTI_WS_RECHECK_BEATS`` heartbeats the writer re-checks the credential
   and the stream (two commands). When the channel layer is down the socket still works: the
   writer polls the stream every second and keeps trying to rejoin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

import redis
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings

from mookti import events
from mookti.ids import is_valid_id
from storage.managers import chats
from storage.managers.chats import can_read
from storage.realtime.managers import Identity, identity_for_token, recheck, tickets
from storage.realtime.tickets import BEARER_SUBPROTOCOL, bearer_from_subprotocols

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "try again later": Redis is unavailable while connecting
REPLAY_BATCH = 500
MAX_CHAT_SUBSCRIPTIONS = 20
# While the channel layer is unavailable: poll the stream this often, retry joining less often.
DEGRADED_POLL = 1.0
REJOIN_EVERY = 5.0
LAYER_TIMEOUT = 3.0
# While Redis is unavailable a socket retries after 0.5 s, doubling up to 8 s (with jitter).
RETRY_AFTER_ERROR = 0.5
RETRY_MAX = 8.0


class _RedisState:
    """Whether this process's sockets currently reach Redis: logged once per change, not per socket."""

    down = False

    @classmethod
    def failed(cls, exc: BaseException) -> None:
        if not cls.down:
            cls.down = True
            logger.warning("live updates: Redis unavailable, sockets retry with backoff: %s", exc)

    @classmethod
    def ok(cls) -> None:
        if cls.down:
            cls.down = False
            logger.warning("live updates: Redis answering again")


def _backoff(delay: float) -> float:
    return min(RETRY_MAX, delay * 2) if delay else RETRY_AFTER_ERROR


HEARTBEAT = json.dumps({"type": "heartbeat"})
RESYNC = json.dumps({"type": "resync"})


class ClientGone(Exception):
    """The client went away while the writer was sending to it."""


class EventsConsumer(AsyncWebsocketConsumer):
    """One websocket of one user (see the module docstring for the delivery rules)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.identity: Identity | None = None
        self.sent_id = events.ZERO_ID
        self.sent_pos = (0, 0)
        self.live: deque[tuple[tuple[int, int], str, str, str]] = deque()
        self.direct: deque[str] = deque()
        self.stale = False
        self.revoked = False
        self.resume_from: str | None = None
        self.wake = asyncio.Event()
        self.chats: dict[str, bool] = {}  # chat id -> True if this socket views it through the chat group
        self.joined: set[str] = set()
        self.layer_ok = False
        self.channel_name: str | None = None
        self.has_channel = asyncio.Event()
        self.writer: asyncio.Task | None = None

    # --- ASGI plumbing ---------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """As Channels' own, except that the layer is joined after authentication and may be down."""
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        try:
            await await_many_dispatch([receive, self._from_layer], self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self._shutdown()

    async def _from_layer(self) -> dict:
        await self.has_channel.wait()
        return await self.channel_layer.receive(self.channel_name)

    async def dispatch(self, message: dict) -> None:
        """Channels closes stale DB connections around every message; this consumer uses no DB."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- connect and disconnect ------------------------------------------------------------------
    async def websocket_connect(self, message: dict) -> None:
        params = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        offered = list(self.scope.get("subprotocols") or [])
        await self.accept(BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None)
        last_event_id = (params.get("lastEventId") or [None])[0]
        if last_event_id:
            try:
                last_event_id = events.normalize_id(last_event_id)
            except ValueError:
                await self.close(CLOSE_BAD_REQUEST, "lastEventId is not an event id")
                return
        try:
            self.identity = await self._authenticate((params.get("ticket") or [None])[0], offered)
        except (TimeoutError, redis.RedisError) as exc:
            _RedisState.failed(exc)
            await self.close(CLOSE_TRY_AGAIN, "the data store is unavailable; reconnect later")
            return
        if self.identity is None:
            await self.close(CLOSE_UNAUTHENTICATED, "invalid, expired or used ticket or token")
            return
        await self._join_layer()
        self.writer = asyncio.create_task(self._write_loop(last_event_id))

    @staticmethod
    async def _authenticate(ticket: str | None, offered: list[str]) -> Identity | None:
        if ticket:
            return await tickets.redeem(ticket)
        token = bearer_from_subprotocols(offered)
        return await identity_for_token(token) if token else None

    async def websocket_disconnect(self, message: dict) -> None:
        raise StopConsumer()

    async def _shutdown(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
        if self.layer_ok:
            for group in list(self.joined):
                try:
                    await asyncio.wait_for(self.channel_layer.group_discard(group, self.channel_name), LAYER_TIMEOUT)
                except Exception as exc:  # the layer forgets us on its own when its connection drops
                    logger.debug("group_discard failed: %s", exc)

    # --- channel layer ---------------------------------------------------------------------------
    def _wanted_groups(self) -> set[str]:
        wanted = {events.user_group(self.identity.user_id)}  # type: ignore[union-attr]
        wanted.update(events.chat_group(chat_id) for chat_id, viewer in self.chats.items() if viewer)
        return wanted

    async def _join_layer(self) -> bool:
        """Get a channel and join every wanted group; False (degraded, polling) if the layer is down."""
        if self.channel_layer is None:
            return False
        try:
            if self.channel_name is None:
                self.channel_name = await asyncio.wait_for(self.channel_layer.new_channel(), LAYER_TIMEOUT)
                self.has_channel.set()
            for group in self._wanted_groups() - self.joined:
                await asyncio.wait_for(self.channel_layer.group_add(group, self.channel_name), LAYER_TIMEOUT)
                self.joined.add(group)
        except Exception as exc:
            if self.layer_ok or not self.joined:
                logger.warning("channel layer unavailable, socket polls the stream: %s", exc)
            self.layer_ok = False
            return False
        self.layer_ok = True
        return True

    async def event_message(self, message: dict) -> None:
        """A poke from the channel layer: queue it for the writer (never blocks)."""
        chat_id = message.get("chatId")
        if chat_id is None:
            if len(self.live) >= settings.MOOKTI_WS_QUEUE:
                self.live.clear()
                self.stale = True  # too far behind: the writer reads the stream instead
            else:
                self.live.append((events.parse_id(message["id"]), message["id"], message["prev"], message["text"]))
        elif self.chats.get(chat_id) and message.get("userId") != self.identity.user_id:  # type: ignore[union-attr]
            self._queue_direct(message["text"])
            data = message.get("data") or {}
            if message.get("eventType") == "chat.deleted" or data.get("visibility") == "private":
                await self._unsubscribe(chat_id, notify=False)
        self.wake.set()

    async def sockets_close(self, message: dict) -> None:
        """The user's token was revoked (or the user deleted): the writer closes this socket if it
        was opened with one of those tokens (``digests`` None: every socket of the user)."""
        digests = message.get("digests")
        if digests is None or self.identity.token_digest in digests:  # type: ignore[union-attr]
            self.revoked = True
            self.wake.set()

    def _queue_direct(self, text: str) -> None:
        if len(self.direct) >= settings.MOOKTI_WS_QUEUE:
            self.direct.popleft()  # public-chat frames are best effort; a reader this slow loses the oldest
        self.direct.append(text)
        self.wake.set()

    # --- client messages -------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.identity is None:
            return  # refused; closing
        try:
            request = json.loads(text_data or "")
        except ValueError:
            request = None
        kind = request.get("type") if isinstance(request, dict) else None
        if kind == "resume":
            await self._resume(request.get("lastEventId"))
        elif kind in ("subscribe", "unsubscribe"):
            chat_id = request.get("chatId")
            if not is_valid_id(chat_id):
                self._error("bad_request", "chatId is missing or malformed")
            elif kind == "subscribe":
                await self._subscribe(chat_id)
            else:
                await self._unsubscribe(chat_id, notify=True)
        elif kind != "heartbeat":  # a client may answer heartbeats
            self._error("bad_request", "expected a JSON object with type resume, subscribe or unsubscribe")

    def _error(self, code: str, message: str, **extra: Any) -> None:
        self._queue_direct(json.dumps({"type": "error", "code": code, "message": message, **extra}))

    async def _resume(self, last_event_id: Any) -> None:
        try:
            self.resume_from = events.normalize_id(str(last_event_id))
        except ValueError:
            self._error("bad_request", "lastEventId is not an event id")
            return
        self.wake.set()

    async def _subscribe(self, chat_id: str) -> None:
        user_id = self.identity.user_id  # type: ignore[union-attr]
        chat = await chats.aget(chat_id)
        if not can_read(chat, user_id):
            self._error("not_found:chat", "Chat not found.", chatId=chat_id)
            return
        if chat_id not in self.chats and len(self.chats) >= MAX_CHAT_SUBSCRIPTIONS:
            self._error("bad_request", f"at most {MAX_CHAT_SUBSCRIPTIONS} chat subscriptions", chatId=chat_id)
            return
        # The owner's own events already arrive through the user's group and stream.
        self.chats[chat_id] = chat["userId"] != user_id  # type: ignore[index]
        if self.chats[chat_id]:
            await self._join_layer()
        self._queue_direct(json.dumps({"type": "subscribed", "chatId": chat_id}))

    async def _unsubscribe(self, chat_id: str, *, notify: bool) -> None:
        viewer = self.chats.pop(chat_id, False)
        group = events.chat_group(chat_id)
        if viewer and group in self.joined:
            self.joined.discard(group)
            try:
                await asyncio.wait_for(self.channel_layer.group_discard(group, self.channel_name), LAYER_TIMEOUT)
            except Exception as exc:
                logger.debug("group_discard failed: %s", exc)
        if notify:
            self._queue_direct(json.dumps({"type": "unsubscribed", "chatId": chat_id}))

    # --- the writer ------------------------------------------------------------------------------
    async def _write_loop(self, last_event_id: str | None) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        try:
            while True:
                try:
                    await self._start(last_event_id)
                    break
                except (TimeoutError, redis.RedisError) as exc:
                    _RedisState.failed(exc)
                    delay = _backoff(delay)
                    await asyncio.sleep(delay * random.uniform(0.75, 1.0))
            # The first beat comes at a random point of the interval, so sockets that connected
            # together (a server restart) do not all re-check Redis at the same moment.
            next_beat = loop.time() + settings.MOOKTI_WS_HEARTBEAT * random.uniform(0.5, 1.0)
            next_join = loop.time() + REJOIN_EVERY
            beats = 0
            while True:
                deadline = min(next_beat, self._expiry_deadline(loop))
                if not self.layer_ok:
                    deadline = min(deadline, loop.time() + DEGRADED_POLL)
                try:
                    async with asyncio.timeout_at(deadline):  # no extra task per wake-up, unlike wait_for
                        await self.wake.wait()
                except TimeoutError:
                    if not self.layer_ok:
                        self.stale = True  # degraded: poll the stream
                self.wake.clear()
                if self.revoked or self.identity.expired():  # type: ignore[union-attr]
                    await self.close(CLOSE_UNAUTHENTICATED, "token revoked or expired")
                    return
                try:
                    if not self.layer_ok and loop.time() >= next_join:
                        next_join = loop.time() + REJOIN_EVERY
                        if await self._join_layer():
                            self.stale = True  # pokes sent while we were away are in the stream
                    if self.resume_from is not None:
                        await self._start(self.resume_from)
                    if loop.time() >= next_beat:
                        next_beat = loop.time() + settings.MOOKTI_WS_HEARTBEAT
                        beats += 1
                        if beats % settings.MOOKTI_WS_RECHECK_BEATS == 0:
                            valid, behind = await recheck(self.identity, self.sent_id)  # type: ignore[arg-type]
                            if not valid:
                                await self.close(CLOSE_UNAUTHENTICATED, "token revoked or expired")
                                return
                            self.stale = self.stale or behind  # a poke that never came
                        await self._send_text(HEARTBEAT)
                    await self._flush()
                    if delay:
                        delay = 0.0
                        _RedisState.ok()
                except (TimeoutError, redis.RedisError) as exc:
                    _RedisState.failed(exc)
                    self.stale = True
                    delay = _backoff(delay)
                    await asyncio.sleep(delay * random.uniform(0.75, 1.0))
        except (asyncio.CancelledError, ClientGone):
            return
        except Exception:
            logger.exception("live-update writer stopped")
            await self.close()

    def _expiry_deadline(self, loop: asyncio.AbstractEventLoop) -> float:
        """The loop time at which this socket's token expires (infinity without a token)."""
        expires_at = self.identity.expires_at  # type: ignore[union-attr]
        if expires_at is None:
            return math.inf
        return loop.time() + max(0.0, expires_at / 1_000_000 - time.time())

    async def _start(self, last_event_id: str | None) -> None:
        """Replay after ``last_event_id`` (or take the stream's head), then say ``ready``."""
        self.resume_from = None
        self.live.clear()
        self.stale = False
        if last_event_id is None:
            self._mark_sent((await events.replay(self.identity.user_id, None)).head)  # type: ignore[union-attr]
        else:
            self._mark_sent(last_event_id)
            await self._catch_up()
        await self._send_text(json.dumps({"type": "ready", "lastEventId": self.sent_id}))

    async def _send_text(self, text: str) -> None:
        """Send one frame; waits while this client's buffers are full (only this socket waits)."""
        try:
            await self.send(text)
        except OSError as exc:  # uvicorn's ClientDisconnected
            raise ClientGone from exc

    def _mark_sent(self, event_id: str) -> None:
        self.sent_id, self.sent_pos = event_id, events.parse_id(event_id)

    async def _catch_up(self) -> None:
        """Send everything after the last sent id from the stream (or ``resync`` if it was trimmed)."""
        while True:
            batch = await events.replay(self.identity.user_id, self.sent_id, REPLAY_BATCH)  # type: ignore[union-attr]
            if not batch.complete:
                await self._send_text(RESYNC)
                self._mark_sent(batch.head)
                return
            for event_id, text in batch.frames:
                await self._send_text(text)
                self._mark_sent(event_id)
            if not batch.more:
                return

    async def _flush(self) -> None:
        """Send what is queued, in order; fall back to the stream when the chain breaks."""
        while True:
            if self.stale:
                self.stale = False
                self.live.clear()  # everything in it is in the stream too
                await self._catch_up()
            elif self.direct:
                await self._send_text(self.direct.popleft())
            elif self.live:
                position, event_id, prev_id, text = self.live.popleft()
                if position <= self.sent_pos:
                    continue  # already sent (replayed, or a duplicate poke)
                if prev_id != self.sent_id:
                    self.stale = True  # something between is missing here: read the stream
                    continue
                await self._send_text(text)
                self._mark_sent(event_id)
            else:
                return
