"""Chats: ``chat:{cid}`` HASH, the owner's ZSET indexes, visibility, title, stream ids."""

from __future__ import annotations

from typing import Any

from mookti import events, outbox
from mookti.errors import Conflict, NotFound
from mookti.ids import new_id, now_us
from mookti.redis import KeyExists, Plan, Write, get_async_redis, get_redis, hashes_of, pipeline, queue_hashes, run_plan
from storage import keys
from storage.entities import Chat, Stream
from storage.managers import lookups
from storage.managers.common import Actor, queue_actor
from storage.managers.paging import PageRequest
from storage.managers.revisions import Revision, touch_chat, touch_user

VISIBILITIES = ("private", "public")
ORDERINGS = {"createdAt": keys.user_chats, "lastMessageAt": keys.user_chats_by_activity}
BULK_BATCH = 200


decode_chat = Chat.view


def can_read(chat: dict[str, Any] | None, actor_id: str | None) -> bool:
    """Owners read their chats; anyone reads a public chat."""
    return chat is not None and (chat["userId"] == actor_id or chat["visibility"] == "public")


def require_readable(chat: dict[str, Any] | None, actor_id: str | None) -> dict[str, Any]:
    """Someone else's private chat is a 404, not a 403: its existence is not revealed."""
    if not can_read(chat, actor_id):
        raise NotFound("chat")
    return chat  # type: ignore[return-value]


def require_owned(chat: dict[str, Any] | None, actor_id: str | None) -> dict[str, Any]:
    if chat is None or chat["userId"] != actor_id:
        raise NotFound("chat")
    return chat


def public_summary(chat: dict[str, Any]) -> dict[str, Any]:
    return {key: chat[key] for key in ("id", "title", "visibility", "createdAt", "lastMessageAt")}


class ChatManager:
    def create(
        self,
        user_id: str,
        *,
        chat_id: str | None = None,
        title: str = "New chat",
        visibility: str = "private",
        created_at: int | None = None,
    ) -> dict[str, Any]:
        """saveChat: the hash, the owner's indexes and the event as one atomic step on a standalone
        Redis (a taken id is a 409 and nothing is written; a replay of the same request is a no-op).
        On a cluster in protocol order, each step guarded: the hash first (only if the id is free),
        indexes after."""
        chat_id = chat_id or new_id()
        created_at = created_at or now_us()
        entity = Chat(chat_id, user_id, title, visibility, created_at)
        taken = Conflict("A chat with this id already exists.", {"id": ["already exists"]})
        chat = entity.to_dict()
        write = Write(absent=(keys.chat(chat_id),))
        write.step(lambda p: p.hset(keys.chat(chat_id), mapping=entity.encode()))

        def index(p: Any) -> None:
            p.zadd(keys.user_chats(user_id), {chat_id: created_at})
            p.zadd(keys.user_chats_by_activity(user_id), {chat_id: created_at})

        write.step(index)
        touch_chat(write, chat_id, "chat", "messages")
        touch_user(write, user_id, "chats")
        events.stage(write, user_id, "chat.created", chat, chat_id=chat_id)
        try:
            write.execute()
        except KeyExists:
            raise taken from None
        if write.applied_before:  # a replay: the chat as the first attempt stored it
            return self.get(chat_id) or chat
        return chat

    def get(self, chat_id: str) -> dict[str, Any] | None:
        return decode_chat(get_redis().hgetall(keys.chat(chat_id)))

    async def aget(self, chat_id: str) -> dict[str, Any] | None:
        """:meth:`get` for async code (a websocket subscribing to a chat)."""
        return decode_chat(await get_async_redis().hgetall(keys.chat(chat_id)))

    def read(self, actor: Actor, chat_id: str, rev: Revision) -> dict[str, Any]:
        """getChatById with its revision, in one round trip, the caller's credential included when
        ``actor`` is a :class:`Credential` (NotModified for a current copy)."""
        return run_plan(self.read_plan(actor, chat_id, rev))

    def read_plan(self, actor: Actor, chat_id: str, rev: Revision) -> Plan[dict[str, Any]]:
        """:meth:`read` as a read plan (sync or async, :mod:`mookti.redis`)."""
        deferred = False

        def queue(pipe: Any) -> None:
            nonlocal deferred
            deferred = queue_actor(pipe, actor)
            pipe.hgetall(keys.chat(chat_id))
            rev.queue(pipe)

        *checked, raw, version = yield queue
        actor_id = actor.resolve(checked[0]) if deferred else actor  # type: ignore[union-attr]
        chat = require_readable(decode_chat(raw), actor_id)
        rev.check(version)
        return chat

    def list_for_user(
        self, user_id: str, page: PageRequest, order_by: str = "createdAt", rev: Revision | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """getChatsByUserId: newest first, keyset pages; an unknown cursor id is a 404."""
        return run_plan(self.list_plan(user_id, page, order_by, rev))

    def list_plan(
        self, user_id: str, page: PageRequest, order_by: str = "createdAt", rev: Revision | None = None
    ) -> Plan[tuple[list[dict[str, Any]], bool]]:
        """:meth:`list_for_user` as a read plan."""

        def queue(pipe: Any) -> None:
            page.queue(pipe, ORDERINGS[order_by](user_id))
            if rev:
                rev.queue(pipe)

        page_reply, *version = yield queue
        found, ids, has_more = page.split(page_reply)
        if not found:
            raise NotFound("chat", "The cursor chat was not found.")
        if rev:
            rev.check(version[0])
        if not ids:
            return [], has_more
        replies = yield lambda pipe: queue_hashes(pipe, [keys.chat(chat_id) for chat_id in ids])
        return [chat for chat in map(decode_chat, hashes_of(replies, len(ids))) if chat], has_more

    def update(self, actor_id: str, chat_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """updateChatVisibilityById / updateChatTitleById (owner only)."""
        chat = require_owned(self.get(chat_id), actor_id)
        fields = {name: changes[name] for name in ("title", "visibility") if name in changes}
        if not fields:
            return chat
        retitled = "title" in fields and fields["title"] != chat["title"]
        chat.update(fields)
        write = Write()
        write.step(lambda p: p.hset(keys.chat(chat_id), mapping=fields))
        touch_chat(write, chat_id, "chat")
        touch_user(write, actor_id, "chats")
        if retitled:  # messages are embedded with their chat's title
            outbox.stage(write, "upsert", kind="chat", userId=actor_id, chatId=chat_id)
        public = chat["visibility"] == "public" or changes.get("visibility") == "private"
        events.stage(write, actor_id, "chat.updated", public_summary(chat), chat_id=chat_id, public=public)
        write.execute()
        return chat

    def delete(self, actor_id: str, chat_id: str) -> dict[str, Any]:
        """deleteChatById: votes, messages, stream ids and the chat; returns the deleted chat."""
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.zrange(keys.chat_messages(chat_id), 0, -1)
        raw, message_ids = pipe.execute()
        chat = require_owned(decode_chat(raw), actor_id)
        write = Write(frees_memory=True)
        self._stage_delete(write, chat, message_ids)
        events.stage(
            write, actor_id, "chat.deleted", {"id": chat_id}, chat_id=chat_id, public=chat["visibility"] == "public"
        )
        write.execute()
        return chat

    def delete_all_for_user(self, user_id: str, *, publish: bool = True) -> int:
        """deleteAllChatsByUserId: in batches, each batch one read and one write round trip."""
        deleted = 0
        client = get_redis()
        while True:
            chat_ids = client.zrange(keys.user_chats(user_id), 0, BULK_BATCH - 1)
            if not chat_ids:
                break
            pipe = pipeline()
            for chat_id in chat_ids:
                pipe.hgetall(keys.chat(chat_id))
                pipe.zrange(keys.chat_messages(chat_id), 0, -1)
            replies = pipe.execute()
            write = Write(frees_memory=True)
            for chat_id, raw, message_ids in zip(chat_ids, replies[::2], replies[1::2], strict=True):
                chat = decode_chat(raw) or {"id": chat_id, "userId": user_id}
                self._stage_delete(write, chat, message_ids)
            write.execute()
            deleted += len(chat_ids)
        if publish and deleted:
            events.publish(user_id, "chat.deleted_all", {"deletedCount": deleted})
        return deleted

    @staticmethod
    def _stage_delete(write: Write, chat: dict[str, Any], message_ids: list[str]) -> None:
        """Unindex first (owner's ZSETs, message lookups), then the chat's own keys."""
        chat_id, user_id = chat["id"], chat["userId"]

        def unindex(p: Any) -> None:
            p.zrem(keys.user_chats(user_id), chat_id)
            p.zrem(keys.user_chats_by_activity(user_id), chat_id)

        write.step(unindex)
        touch_user(write, user_id, "chats")
        lookups.stage_delete(write, message_ids)
        chat_keys = [
            keys.chat_message_data(chat_id),
            keys.chat_messages(chat_id),
            keys.chat_votes(chat_id),
            keys.chat_streams(chat_id),
            keys.chat_active_stream(chat_id),
            keys.chat_rev(chat_id),
            keys.chat(chat_id),
        ]
        write.step(lambda p: p.unlink(*chat_keys))
        outbox.stage(write, "delete_chat", userId=user_id, chatId=chat_id)

    # --- resumable stream ids (getStreamIdsByChatId; createStreamId is storage.managers.streams) ---
    def list_streams(self, actor_id: str, chat_id: str) -> list[dict[str, Any]]:
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.zrange(keys.chat_streams(chat_id), 0, -1, withscores=True)
        raw, streams = pipe.execute()
        require_owned(decode_chat(raw), actor_id)  # a public chat's readers get messages, not streams
        return [Stream(sid, chat_id, int(score)).to_dict() for sid, score in streams]


chats = ChatManager()
