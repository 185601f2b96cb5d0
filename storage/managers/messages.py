"""Messages and votes of a chat.

A message is a field of ``chat:{cid}:message-data`` (HASH: message id -> its compact value,
:meth:`Message.value`) indexed in ``chat:{cid}:messages`` (ZSET by createdAt); both live in the
chat's slot, so saving a message, indexing it and bumping the chat's lastMessageAt is one
MULTI/EXEC, and a page is one HMGET. A field of ``message-chat-ids:{bucket}`` lets a message be
found by id alone (ai-chatbot's getMessageById; :mod:`storage.managers.lookups`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from django.conf import settings

from mookti import events, outbox
from mookti.errors import Conflict, DomainError, NotFound, RateLimited
from mookti.ids import current_scope, new_id, now_us
from mookti.redis import Plan, Write, get_redis, pipeline, register_script, run_plan
from storage import keys, signals
from storage.entities import Message, Vote, text_of
from storage.entities.records import MESSAGE_LUA
from storage.managers import lookups
from storage.managers.chats import decode_chat, require_owned, require_readable
from storage.managers.common import Actor, queue_actor
from storage.managers.paging import PageRequest
from storage.managers.revisions import Revision, touch_chat, touch_user
from storage.managers.users import decode_user

ROLES = ("user", "assistant", "system")
# What a message's events carry: its ids and role (a client counts its learner's messages without a
# read); clients read the text and time with GET (the replay stream would otherwise hold a second
# copy of every message, and every byte here is kept per message for the stream's retention).
EVENT_FIELDS = ("id", "chatId", "role")
DAY_US = 24 * 3600 * 1_000_000
# Rate-limit history kept per user; covers the longest window the count endpoint accepts.
MESSAGE_TIMES_RETENTION_US = 31 * DAY_US

# KEYS[1] hash; ARGV[1] field, ARGV[2] value. Raises the field to the value, only on an existing hash
# (a chat's lastMessageAt: concurrent saves into one chat commit in any order, and never move it back).
RAISE_FIELD = register_script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""
)

# KEYS[1] user hash, KEYS[2] the user's message-times ZSET (one slot); ARGV: now, window start,
# retention cutoff, limits by kind (JSON), then the new learner messages' ids.
# Checks the daily limit and reserves the quota in one atomic step, so concurrent posts cannot
# pass it together. Replies {1} (reserved), {0, limit, kind, oldest score} (over the limit) or
# {-1} (no such user). A message counts from the time it reached the server, not its createdAt,
# so a client cannot backdate its way past the limit.
RESERVE_QUOTA = register_script(
    """
local user = redis.call('HMGET', KEYS[1], 'type', 'isGuest')
if not user[1] then return {-1} end
local n = #ARGV - 4
if n == 0 then return {1} end
local limits = cjson.decode(ARGV[4])
local kind = user[2] == '1' and 'guest' or user[1]
local limit = tonumber(limits[kind] or limits['free'])
if redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf') + n > limit then
  local oldest = redis.call('ZRANGE', KEYS[2], ARGV[2], '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
  return {0, limit, kind, oldest[2] or ''}
end
for i = 5, #ARGV do redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
return {1}
"""
)

# KEYS[1] the chat's message data, KEYS[2] the chat; ARGV[1] message id, ARGV[2] the sections to
# replace (letters: p parts, a attachments, c content), then the new parts' kind and body,
# attachments and content. Updates the message only if it exists (keeping its role and time);
# replies {0} when it is gone, else {1, visibility, its new value}.
UPDATE_IF_EXISTS = register_script(
    MESSAGE_LUA
    + """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return {0} end
local head, attachments, content, body = parse_message(old)
local changes = ARGV[2]
if string.find(changes, 'p', 1, true) then  -- the kind is the header's second letter
  head, body = string.sub(head, 1, 1) .. ARGV[3] .. string.sub(head, 3), ARGV[4]
end
if string.find(changes, 'a', 1, true) then attachments = ARGV[5] end
if string.find(changes, 'c', 1, true) then content = ARGV[6] end
local value = build_message(head, attachments, content, body)
redis.call('HSET', KEYS[1], ARGV[1], value)
return {1, redis.call('HGET', KEYS[2], 'visibility') or 'private', value}
"""
)


decode_message = Message.stored


def _lookup(message_id: str) -> tuple[str, str]:
    """(chat id, owner id) of a message, by its id alone; a missing one is a 404."""
    pipe = pipeline()
    lookups.queue_read(pipe, message_id)
    found = lookups.parse(*pipe.execute())
    if found is None:
        raise NotFound("message")
    return found.chatId, found.ownerId


def stage_chat_write(p: Any, chat_id: str, group: list[dict[str, Any]], last: int) -> None:
    """Messages of one chat, their index entries and the chat's lastMessageAt (never moved back)."""
    p.hset(keys.chat_message_data(chat_id), mapping={m["id"]: Message.build(m).value() for m in group})
    p.zadd(keys.chat_messages(chat_id), {m["id"]: m["createdAt"] for m in group})
    RAISE_FIELD(keys=[keys.chat(chat_id)], args=["lastMessageAt", last], client=p)


class MessageManager:
    def save(self, actor_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """saveMessages (bulk). Checks and rate limit in one read, then one write."""
        return run_plan(self.save_plan(actor_id, messages))

    def save_plan(self, actor_id: str, messages: list[dict[str, Any]]) -> Plan[list[dict[str, Any]]]:
        """:meth:`save` as a plan (sync or async, :mod:`mookti.redis`)."""
        now = now_us()
        for index, message in enumerate(messages):
            message["id"] = message.get("id") or new_id()
            message.setdefault("attachments", [])
            message["createdAt"] = message.get("createdAt") or now + index * 1000
            if not message.get("content"):
                message["content"] = text_of(message["parts"])
        chat_ids = list(dict.fromkeys(m["chatId"] for m in messages))
        times_key = keys.user_message_times(actor_id)
        quota = [m["id"] for m in messages if m["role"] == "user"]  # ids are unique (the lookup): no chat id

        def check(pipe: Any) -> None:
            for chat_id in chat_ids:
                pipe.hgetall(keys.chat(chat_id))
            for message in messages:
                lookups.queue_read(pipe, message["id"])
            pipe.hgetall(keys.user(actor_id))
            RESERVE_QUOTA(
                keys=[keys.user(actor_id), times_key],
                args=[
                    now,
                    now - DAY_US,
                    now - MESSAGE_TIMES_RETENTION_US,
                    orjson.dumps(settings.MOOKTI_MESSAGE_LIMITS).decode(),
                    *quota,
                ],
                client=pipe,
            )

        replies = yield check
        user_raw, reservation = replies[-2:]
        try:
            chats = {
                cid: require_owned(decode_chat(raw), actor_id) for cid, raw in zip(chat_ids, replies, strict=False)
            }
            found = replies[len(chat_ids) : len(chat_ids) + len(messages)]
            owners = [lookups.parse(value) for value in found]
            scope = current_scope()
            replay = scope is not None and scope.replay
            for message, owner in zip(messages, owners, strict=True):
                # a replayed request finds its own first attempt's messages: its guarded write is a no-op
                mine = owner is not None and (owner.chatId, owner.ownerId) == (message["chatId"], actor_id)
                if owner and not (replay and mine):
                    raise Conflict(f"Message {message['id']} already exists.", {"id": ["already exists"]})
            user = decode_user(user_raw)
            if user is None:
                raise NotFound("user")
        except DomainError:
            if quota and reservation[0] == 1:
                yield lambda pipe: pipe.zrem(times_key, *quota)  # give the reserved quota back
            raise
        if reservation[0] == 0:
            limit, kind, oldest = int(reservation[1]), reservation[2], reservation[3]
            frees_at = (int(oldest) + DAY_US) if oldest else now + DAY_US
            raise RateLimited(
                f"Daily message limit of {limit} reached for {kind} users.",
                retry_after=(frees_at - now) // 1_000_000 + 1,
            )

        write = Write()
        by_chat: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in messages:
            by_chat[message["chatId"]].append(message)
        for chat_id, group in by_chat.items():
            last = max(m["createdAt"] for m in group)
            chat = chats[chat_id]
            if chat["lastMessageAt"] and chat["lastMessageAt"] > last:
                last = chat["lastMessageAt"]
            chat["lastMessageAt"] = last
            write.step(lambda p, c=chat_id, g=group, t=last: stage_chat_write(p, c, g, t))
            touch_chat(write, chat_id, "chat", "messages")
        for message in messages:
            lookups.stage_set(write, message["id"], message["chatId"], actor_id)

        def index(p: Any) -> None:
            for chat_id, chat in chats.items():
                p.zadd(keys.user_chats_by_activity(actor_id), {chat_id: chat["lastMessageAt"]}, gt=True)

        write.step(index)
        touch_user(write, actor_id, "chats")
        for message in messages:
            outbox.stage(
                write, "upsert", kind="message", userId=actor_id, chatId=message["chatId"], messageId=message["id"]
            )
            public = chats[message["chatId"]]["visibility"] == "public"
            summary = {name: message[name] for name in EVENT_FIELDS}  # the text is re-read, not copied
            events.stage(write, actor_id, "message.created", summary, chat_id=message["chatId"], public=public)
        signals.messages_saving.send(sender=MessageManager, write=write, user=user, messages=messages)
        yield write
        if write.applied_before:  # a replay: answer with what the first attempt stored
            values = yield lambda pipe: [pipe.hget(keys.chat_message_data(n["chatId"]), n["id"]) for n in messages]
            found = zip(messages, values, strict=True)
            return [m for m in (decode_message(n["chatId"], n["id"], value) for n, value in found) if m]
        return messages

    def list(
        self, actor: Actor, chat_id: str, page: PageRequest, rev: Revision | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """getMessagesByChatId: oldest first, keyset pages by message id. The first round trip
        checks the caller's credential too when ``actor`` is a :class:`Credential`."""
        return run_plan(self.list_plan(actor, chat_id, page, rev))

    def list_plan(
        self, actor: Actor, chat_id: str, page: PageRequest, rev: Revision | None = None
    ) -> Plan[tuple[list[dict[str, Any]], bool]]:
        """:meth:`list` as a read plan (sync or async, :mod:`mookti.redis`)."""
        deferred = False

        def queue(pipe: Any) -> None:
            nonlocal deferred
            deferred = queue_actor(pipe, actor)
            pipe.hgetall(keys.chat(chat_id))
            page.queue(pipe, keys.chat_messages(chat_id))
            if rev:
                rev.queue(pipe)

        replies = yield queue
        if deferred:
            actor = actor.resolve(replies.pop(0))  # type: ignore[union-attr]
        raw_chat, page_reply, *version = replies
        require_readable(decode_chat(raw_chat), actor)  # type: ignore[arg-type]
        found, ids, has_more = page.split(page_reply)
        if not found:
            raise NotFound("message", "The cursor message was not found.")
        if rev:
            rev.check(version[0])
        if not ids:
            return [], has_more
        values = (yield lambda pipe: pipe.hmget(keys.chat_message_data(chat_id), ids))[0]
        found = (decode_message(chat_id, m, value) for m, value in zip(ids, values, strict=True))
        return [m for m in found if m], has_more

    def get(self, actor_id: str | None, message_id: str) -> dict[str, Any]:
        """getMessageById."""
        chat_id, _ = _lookup(message_id)
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.hget(keys.chat_message_data(chat_id), message_id)
        raw_chat, value = pipe.execute()
        require_readable(decode_chat(raw_chat), actor_id)
        message = decode_message(chat_id, message_id, value)
        if message is None:
            raise NotFound("message")
        return message

    def update(self, actor_id: str, message_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """updateMessage: replace parts (and attachments/content) of the owner's message."""
        chat_id, owner_id = _lookup(message_id)
        if owner_id != actor_id:
            raise NotFound("message")
        changed, kind, body, attachments, content = "", "", "", "", ""
        if "parts" in changes:  # and content: kept only when it is not the parts' text
            kind, body = Message.parts_section(changes["parts"])
            changed += "pc"
            content = changes.get("content") or ""
            if content == text_of(changes["parts"]):
                content = ""
        elif "content" in changes:
            changed += "c"
            content = changes["content"]
        if "attachments" in changes:
            changed += "a"
            attachments = Message.attachments_section(changes["attachments"])
        write = Write()
        args = [message_id, changed, kind, body, attachments, content]

        def replace(p: Any) -> None:
            UPDATE_IF_EXISTS(keys=[keys.chat_message_data(chat_id), keys.chat(chat_id)], args=args, client=p)

        index = write.step(replace)
        touch_chat(write, chat_id, "messages")
        outbox.stage(write, "upsert", kind="message", userId=actor_id, chatId=chat_id, messageId=message_id)
        data = {"id": message_id, "chatId": chat_id, "changed": sorted(changes)}
        event_index = events.stage(write, actor_id, "message.updated", data, chat_id=chat_id)

        def fan_out(replies: list[list[Any]]) -> None:
            reply = replies[index][-1]  # {0} when the message is gone
            if reply[0] and reply[1] == "public":
                events.notify_chat(chat_id, actor_id, replies[event_index][0], "message.updated", data)

        write.on_commit(fan_out)
        reply = write.execute()[index][-1]
        if write.applied_before:
            return self.get(actor_id, message_id)
        if not reply[0]:
            raise NotFound("message")
        return decode_message(chat_id, message_id, reply[2])  # type: ignore[return-value]

    def delete_after(self, actor_id: str, chat_id: str, timestamp: int) -> list[str]:
        """deleteMessagesByChatIdAfterTimestamp: createdAt >= timestamp (inclusive), votes too."""
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.zrangebyscore(keys.chat_messages(chat_id), timestamp, "+inf")
        raw_chat, message_ids = pipe.execute()
        chat = require_owned(decode_chat(raw_chat), actor_id)
        if not message_ids:
            return []
        write = Write(frees_memory=True)

        def unindex(p: Any) -> None:
            p.zrem(keys.chat_messages(chat_id), *message_ids)
            p.hdel(keys.chat_votes(chat_id), *message_ids)
            p.hdel(keys.chat_message_data(chat_id), *message_ids)

        lookups.stage_delete(write, message_ids)
        write.step(unindex)
        touch_chat(write, chat_id, "messages")
        outbox.stage(write, "delete", kind="message", userId=actor_id, chatId=chat_id, messageIds=",".join(message_ids))
        events.stage(
            write,
            actor_id,
            "message.deleted",
            {"chatId": chat_id, "ids": message_ids, "after": timestamp},
            chat_id=chat_id,
            public=chat["visibility"] == "public",
        )
        write.execute()
        return message_ids

    def count_recent(self, user_id: str, hours: int) -> int:
        """getMessageCountByUserId: the user's own messages (role user) sent in the last N hours.

        Counts messages as sent, so deleting a chat does not hand back a day's quota.
        """
        since = now_us() - hours * 3600 * 1_000_000
        return int(get_redis().zcount(keys.user_message_times(user_id), since, "+inf"))


class VoteManager:
    def vote(self, actor_id: str, chat_id: str, message_id: str, vote_type: str) -> dict[str, Any]:
        """voteMessage: upsert keyed by (chat, message); only the chat's owner votes."""
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.hexists(keys.chat_message_data(chat_id), message_id)
        raw_chat, exists = pipe.execute()
        require_owned(decode_chat(raw_chat), actor_id)
        if not exists:
            raise NotFound("message")
        vote = Vote.from_field(chat_id, message_id, vote_type).to_dict()
        write = Write()
        write.step(lambda p: p.hset(keys.chat_votes(chat_id), message_id, vote_type))
        events.stage(write, actor_id, "vote.updated", vote, chat_id=chat_id)
        write.execute()
        return vote

    def list(self, actor_id: str | None, chat_id: str) -> list[dict[str, Any]]:
        """getVotesByChatId: the owner's only (as ai-chatbot)."""
        pipe = pipeline()
        pipe.hgetall(keys.chat(chat_id))
        pipe.hgetall(keys.chat_votes(chat_id))
        raw_chat, votes = pipe.execute()
        require_owned(decode_chat(raw_chat), actor_id)  # readers of a public chat do not see its votes
        return [Vote.from_field(chat_id, mid, v).to_dict() for mid, v in sorted(votes.items())]


messages = MessageManager()
votes = VoteManager()
