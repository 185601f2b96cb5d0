"""Bulk import with explicit ids and timestamps: no rate limits, no live-update events.

``import_chatbot`` (ai-chatbot's Postgres) and ``import_data`` (this service's export format)
write through here. Each method takes a batch of entities in the managers' decoded shape,
reads what already exists in one round trip and writes only what is new, keeping the write
protocol (entity first, index last). Every item gets an outcome:

- ``WRITTEN``: created;
- ``EXISTS``: already there with the same data, nothing written (so a re-run changes nothing);
- ``CHANGED``: already there with other data, kept as it is (never overwritten);
- anything else: ``"<problem>: <detail>"``, why the item breaks a rule (bad id, unknown
  owner, ...); nothing is written for it.

``dry_run`` reads and checks without writing; a :class:`Planned` collects what a dry run
would have created so later batches of the same run see it. Imported messages and documents
are enqueued for indexing through :func:`mookti.outbox.stage`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mookti import outbox
from mookti.errors import Conflict
from mookti.ids import is_valid_id, now_us
from mookti.redis import Write, get_redis, pipeline, register_script
from storage import keys
from storage.entities import Chat, Document, Message, Suggestion, User
from storage.managers import lookups
from storage.managers.chats import VISIBILITIES
from storage.managers.common import create_if_absent
from storage.managers.documents import KINDS
from storage.managers.messages import MESSAGE_TIMES_RETENTION_US, ROLES, stage_chat_write, text_of
from storage.managers.users import USER_TYPES, normalize_email, users

WRITTEN = "written"
EXISTS = "exists"
CHANGED = "exists with other data (kept)"
DUPLICATE = "duplicate id in this batch"
CONCURRENT = "created concurrently by someone else"

# Fields that make two entities "the same" (all but the identity); ai-chatbot knows fewer user fields.
USER_FIELDS = tuple(n for n in User.names() if n != "id")
CHAT_FIELDS = tuple(n for n in Chat.names() if n not in ("id", "lastMessageAt"))
VERSION_FIELDS = tuple(n for n in Document.names() if n != "id")
SUGGESTION_FIELDS = tuple(n for n in Suggestion.names() if n not in ("id", "documentId"))

# KEYS[1] document hash; ARGV id, userId, first version time, newest version time, its title, its kind.
# Keeps createdAt at the oldest version and title/kind/updatedAt at the newest one.
MERGE_DOCUMENT = register_script(
    """
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'userId', ARGV[2])
local first = redis.call('HGET', KEYS[1], 'createdAt')
if (not first) or tonumber(ARGV[3]) < tonumber(first) then redis.call('HSET', KEYS[1], 'createdAt', ARGV[3]) end
local updated = redis.call('HGET', KEYS[1], 'updatedAt')
if (not updated) or tonumber(ARGV[4]) >= tonumber(updated) then
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[4], 'title', ARGV[5], 'kind', ARGV[6])
end
return 1
"""
)


@dataclass
class Planned:
    """What a dry run would have created (ids), consulted as if it existed."""

    users: set[str] = field(default_factory=set)
    emails: dict[str, str] = field(default_factory=dict)  # email -> user id
    chats: dict[str, str] = field(default_factory=dict)  # chat id -> owner
    messages: dict[str, str] = field(default_factory=dict)  # message id -> chat id
    documents: dict[str, str] = field(default_factory=dict)  # document id -> owner
    versions: set[tuple[str, int]] = field(default_factory=set)


def _same(existing: dict[str, Any], item: dict[str, Any], fields: Sequence[str]) -> str:
    return EXISTS if all(existing.get(name) == item.get(name) for name in fields) else CHANGED


def _bad_ids(item: dict[str, Any], *names: str) -> str | None:
    for name in names:
        if not is_valid_id(item.get(name)):
            return f"invalid {name}: {item.get(name)!r}"
    return None


def _bad_time(item: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = item.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
            return f"invalid {name}: {value!r}"
    return None


def _screen(
    items: list[dict[str, Any]], check: Any, identity: Any = lambda item: item.get("id")
) -> tuple[list[str | None], list[int]]:
    """Each item's rule problem (or None), duplicates within the batch marked; and the valid positions."""
    outcomes: list[str | None] = [check(item) for item in items]
    for position in _first_seen([identity(item) for item in items]):
        outcomes[position] = outcomes[position] or DUPLICATE
    return outcomes, [p for p, o in enumerate(outcomes) if o is None]


def _first_seen(ids: list[Any]) -> set[int]:
    """Positions of items whose id already appeared earlier in the batch."""
    seen: set[str] = set()
    repeated = set()
    for position, item_id in enumerate(ids):
        if item_id in seen:
            repeated.add(position)
        seen.add(item_id)
    return repeated


class ImportManager:
    # --- users ---------------------------------------------------------------------------------
    def users(
        self,
        items: list[dict[str, Any]],
        *,
        compare: Sequence[str] = USER_FIELDS,
        dry_run: bool = False,
        planned: Planned | None = None,
    ) -> list[str]:
        """Users with their id, email claim, password hash and (restore) message-time history.

        Item: id, email, password (a Django hash or ""), name, type, isGuest, timezone,
        preferences, createdAt, optionally messageTimes [(messageId, createdAt)].
        """
        for item in items:
            item["email"] = normalize_email(item.get("email") or "")
        outcomes, valid = _screen(items, _check_user)
        pipe = pipeline()
        for position in valid:
            pipe.hgetall(keys.user(items[position]["id"]))
            pipe.get(keys.user_email(items[position]["email"]))
        replies = pipe.execute()
        claimed: dict[str, str] = {}
        for n, position in enumerate(valid):
            item, raw, owner = items[position], replies[2 * n], replies[2 * n + 1]
            existing = User.decode(raw)
            if existing is not None:
                outcomes[position] = _same(asdict(existing), item, compare)
                continue
            owner = owner or claimed.get(item["email"]) or (planned.emails.get(item["email"]) if planned else None)
            if owner and owner != item["id"]:
                outcomes[position] = f"email already registered: {item['email']} belongs to user {owner}"
                continue
            claimed[item["email"]] = item["id"]
            if dry_run:
                outcomes[position] = WRITTEN
                if planned is not None:
                    planned.users.add(item["id"])
                    planned.emails[item["email"]] = item["id"]
            else:
                outcomes[position] = self._create_user(item)
        return outcomes  # type: ignore[return-value]

    @staticmethod
    def _create_user(item: dict[str, Any]) -> str:
        try:
            users.create(
                item["email"],
                name=item.get("name", ""),
                user_type=item.get("type", "free"),
                timezone=item.get("timezone", "UTC"),
                preferences=item.get("preferences") or {},
                user_id=item["id"],
                created_at=item["createdAt"],
                is_guest=bool(item.get("isGuest")),
                password_hash=item.get("password") or "",
            )
        except Conflict as exc:
            return f"conflict: {exc.message}"
        times = dict(item.get("messageTimes") or [])
        if times:
            get_redis().zadd(keys.user_message_times(item["id"]), times)
        return WRITTEN

    # --- chats ---------------------------------------------------------------------------------
    def chats(self, items: list[dict[str, Any]], *, dry_run: bool = False, planned: Planned | None = None) -> list[str]:
        """Chats: id, userId, title, visibility, createdAt, optionally lastMessageAt."""
        outcomes, valid = _screen(items, _check_chat)
        pipe = pipeline()
        for position in valid:
            pipe.hgetall(keys.chat(items[position]["id"]))
            pipe.exists(keys.user(items[position]["userId"]))
        replies = pipe.execute()
        new = []
        for n, position in enumerate(valid):
            item, raw, owner_exists = items[position], replies[2 * n], replies[2 * n + 1]
            existing = Chat.view(raw)
            if existing is not None:
                outcomes[position] = _same(existing, item, CHAT_FIELDS)
            elif not owner_exists and not (planned and item["userId"] in planned.users):
                outcomes[position] = f"owner not imported: {item['userId']}"
            else:
                new.append(position)
        if dry_run:
            for position in new:
                outcomes[position] = WRITTEN
                if planned is not None:
                    planned.chats[items[position]["id"]] = items[position]["userId"]
            return outcomes  # type: ignore[return-value]
        write = Write()
        for position in new:
            write.step(
                lambda p, i=items[position]: create_if_absent(keys.chat(i["id"]), Chat.build(i).encode(), client=p)
            )
        created = [position for position, reply in zip(new, write.execute(), strict=True) if reply[0]]
        for position in set(new) - set(created):
            outcomes[position] = CONCURRENT
        index = Write()
        for position in created:
            item = items[position]
            active = item.get("lastMessageAt") or item["createdAt"]

            def step(p: Any, i: dict[str, Any] = item, a: int = active) -> None:
                p.zadd(keys.user_chats(i["userId"]), {i["id"]: i["createdAt"]})
                p.zadd(keys.user_chats_by_activity(i["userId"]), {i["id"]: a}, gt=True)

            index.step(step)
            outcomes[position] = WRITTEN
        index.execute()
        return outcomes  # type: ignore[return-value]

    # --- messages ------------------------------------------------------------------------------
    def messages(
        self,
        items: list[dict[str, Any]],
        *,
        record_times: bool = True,
        dry_run: bool = False,
        planned: Planned | None = None,
    ) -> list[str]:
        """Messages: id, chatId, role, parts, attachments, createdAt, optionally content.

        ``record_times`` adds the users' own recent messages to the rate-limit history
        (a restore brings that history with the user instead).
        """
        outcomes, valid = _screen(items, _check_message)
        chat_ids = list(dict.fromkeys(items[p]["chatId"] for p in valid))
        pipe = pipeline()
        for chat_id in chat_ids:
            pipe.hgetall(keys.chat(chat_id))
        for position in valid:
            lookups.queue_read(pipe, items[position]["id"])
            pipe.hget(keys.chat_message_data(items[position]["chatId"]), items[position]["id"])
        replies = pipe.execute()
        owners = {cid: (Chat.view(raw) or {}).get("userId") for cid, raw in zip(chat_ids, replies, strict=False)}
        if planned:
            owners.update({cid: planned.chats[cid] for cid in chat_ids if not owners[cid] and cid in planned.chats})
        rest = replies[len(chat_ids) :]
        new = []
        for n, position in enumerate(valid):
            item, raw = items[position], rest[2 * n + 1]
            found = lookups.parse(rest[2 * n])
            lookup = found.chatId if found else None  # the chat that holds the id
            if planned and not lookup and item["id"] in planned.messages:
                lookup = planned.messages[item["id"]]
            if not owners[item["chatId"]]:
                outcomes[position] = f"chat not imported: {item['chatId']}"
            elif lookup and lookup != item["chatId"]:
                outcomes[position] = f"message id used by another chat: {lookup}"
            elif raw:
                stored = Message.stored(item["chatId"], item["id"], raw)
                same = stored == Message.stored(item["chatId"], item["id"], Message.build(item).value())
                outcomes[position] = EXISTS if same else CHANGED
            elif lookup:
                outcomes[position] = EXISTS
            else:
                new.append(position)
                outcomes[position] = WRITTEN
        if dry_run:
            if planned is not None:
                planned.messages.update({items[p]["id"]: items[p]["chatId"] for p in new})
            return outcomes  # type: ignore[return-value]
        if new:
            self._write_messages([items[p] for p in new], owners, record_times)
        return outcomes  # type: ignore[return-value]

    @staticmethod
    def _write_messages(found: list[dict[str, Any]], owners: dict[str, str | None], record_times: bool) -> None:
        by_chat: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in found:
            by_chat[message["chatId"]].append(message)
        write = Write()
        for chat_id, group in by_chat.items():
            last = max(m["createdAt"] for m in group)
            write.step(lambda p, c=chat_id, g=group, t=last: stage_chat_write(p, c, g, t))
        for message in found:
            lookups.stage_set(write, message["id"], message["chatId"], owners[message["chatId"]] or "")
        recent_since = now_us() - MESSAGE_TIMES_RETENTION_US
        for chat_id, group in by_chat.items():
            owner = owners[chat_id]
            times = {m["id"]: m["createdAt"] for m in group if m["role"] == "user"}
            times = {member: at for member, at in times.items() if at >= recent_since} if record_times else {}

            def index(p: Any, c: str = chat_id, u: str = owner, g: list = group, t: dict = times) -> None:
                p.zadd(keys.user_chats_by_activity(u), {c: max(m["createdAt"] for m in g)}, gt=True)
                if t:
                    p.zadd(keys.user_message_times(u), t)

            write.step(index)
            for message in group:
                outbox.stage(write, "upsert", kind="message", userId=owner, chatId=chat_id, messageId=message["id"])
        write.execute()

    # --- votes and stream ids ------------------------------------------------------------------
    def votes(self, items: list[dict[str, Any]], *, dry_run: bool = False, planned: Planned | None = None) -> list[str]:
        """Votes: chatId, messageId, isUpvoted."""
        outcomes: list[str | None] = [_bad_ids(item, "chatId", "messageId") for item in items]
        for position, item in enumerate(items):
            if outcomes[position] is None and not isinstance(item.get("isUpvoted"), bool):
                outcomes[position] = f"invalid isUpvoted: {item.get('isUpvoted')!r}"
        valid = [p for p, o in enumerate(outcomes) if o is None]
        pipe = pipeline()
        for position in valid:
            item = items[position]
            pipe.exists(keys.chat(item["chatId"]))
            pipe.hexists(keys.chat_message_data(item["chatId"]), item["messageId"])
            pipe.hget(keys.chat_votes(item["chatId"]), item["messageId"])
        replies = pipe.execute()
        new: dict[str, dict[str, str]] = defaultdict(dict)
        for n, position in enumerate(valid):
            item = items[position]
            chat_exists, message_exists, current = replies[3 * n : 3 * n + 3]
            value = "up" if item["isUpvoted"] else "down"
            if planned:
                chat_exists = chat_exists or item["chatId"] in planned.chats
                message_exists = message_exists or planned.messages.get(item["messageId"]) == item["chatId"]
            if not chat_exists:
                outcomes[position] = f"chat not imported: {item['chatId']}"
            elif not message_exists:
                outcomes[position] = f"message not imported: {item['messageId']}"
            elif current or item["messageId"] in new[item["chatId"]]:
                outcomes[position] = EXISTS if (current or new[item["chatId"]][item["messageId"]]) == value else CHANGED
            else:
                new[item["chatId"]][item["messageId"]] = value
                outcomes[position] = WRITTEN
        if not dry_run and any(new.values()):
            write = Write()
            for chat_id, mapping in new.items():
                if mapping:
                    write.step(lambda p, c=chat_id, m=mapping: p.hset(keys.chat_votes(c), mapping=m))
            write.execute()
        return outcomes  # type: ignore[return-value]

    def streams(
        self, items: list[dict[str, Any]], *, dry_run: bool = False, planned: Planned | None = None
    ) -> list[str]:
        """Resumable-stream ids: id, chatId, createdAt."""
        outcomes, valid = _screen(items, lambda i: _bad_ids(i, "id", "chatId") or _bad_time(i, "createdAt"))
        pipe = pipeline()
        for position in valid:
            pipe.exists(keys.chat(items[position]["chatId"]))
            pipe.zscore(keys.chat_streams(items[position]["chatId"]), items[position]["id"])
        replies = pipe.execute()
        write = Write()
        for n, position in enumerate(valid):
            item, chat_exists, score = items[position], replies[2 * n], replies[2 * n + 1]
            if not chat_exists and not (planned and item["chatId"] in planned.chats):
                outcomes[position] = f"chat not imported: {item['chatId']}"
            elif score is not None:
                outcomes[position] = EXISTS if int(score) == item["createdAt"] else CHANGED
            else:
                outcomes[position] = WRITTEN
                write.step(lambda p, i=item: p.zadd(keys.chat_streams(i["chatId"]), {i["id"]: i["createdAt"]}, nx=True))
        if not dry_run and write:
            write.execute()
        return outcomes  # type: ignore[return-value]

    # --- documents -----------------------------------------------------------------------------
    def document_versions(
        self, items: list[dict[str, Any]], *, dry_run: bool = False, planned: Planned | None = None
    ) -> list[str]:
        """Document versions: id, userId, title, kind, content, createdAt (one per save)."""
        outcomes, valid = _screen(items, _check_version, lambda i: (i.get("id"), i.get("createdAt")))
        document_ids = list(dict.fromkeys(items[p]["id"] for p in valid))
        pipe = pipeline()
        for document_id in document_ids:
            pipe.hget(keys.document(document_id), "userId")
        for position in valid:
            pipe.exists(keys.user(items[position]["userId"]))
            pipe.hgetall(keys.document_version(items[position]["id"], items[position]["createdAt"]))
        replies = pipe.execute()
        owners = dict(zip(document_ids, replies, strict=False))
        if planned:
            owners.update({d: planned.documents[d] for d in document_ids if not owners[d] and d in planned.documents})
        rest = replies[len(document_ids) :]
        new: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for n, position in enumerate(valid):
            item, user_exists, raw = items[position], rest[2 * n], rest[2 * n + 1]
            owner = owners[item["id"]]
            existing = Document.view(raw)
            if existing is not None:
                outcomes[position] = _same(existing, item, VERSION_FIELDS)
            elif owner and owner != item["userId"]:
                outcomes[position] = f"document belongs to another user: {item['id']} is owned by {owner}"
            elif not user_exists and not (planned and item["userId"] in planned.users):
                outcomes[position] = f"owner not imported: {item['userId']}"
            else:
                owners[item["id"]] = item["userId"]
                new[item["id"]].append(item)
                outcomes[position] = WRITTEN
        if dry_run:
            if planned is not None:
                for document_id, versions in new.items():
                    planned.documents[document_id] = versions[0]["userId"]
                    planned.versions.update((document_id, v["createdAt"]) for v in versions)
            return outcomes  # type: ignore[return-value]
        if new:
            self._write_versions(new)
        return outcomes  # type: ignore[return-value]

    @staticmethod
    def _write_versions(new: dict[str, list[dict[str, Any]]]) -> None:
        write = Write()
        for document_id, versions in new.items():
            owner = versions[0]["userId"]
            first = min(v["createdAt"] for v in versions)
            newest = max(versions, key=lambda v: v["createdAt"])
            summary = [document_id, owner, first, newest["createdAt"], newest["title"], newest["kind"]]

            def store(p: Any, d: str = document_id, vs: list = versions, args: list = summary) -> None:
                for v in vs:
                    p.hset(keys.document_version(d, v["createdAt"]), mapping=Document.build(v).encode())
                p.zadd(keys.document_versions(d), {str(v["createdAt"]): v["createdAt"] for v in vs})
                MERGE_DOCUMENT(keys=[keys.document(d)], args=args, client=p)

            write.step(store)
            write.step(lambda p, d=document_id, u=owner, f=first: p.zadd(keys.user_documents(u), {d: f}, lt=True))
            outbox.stage(write, "upsert", kind="document", userId=owner, documentId=document_id)
        write.execute()

    def suggestions(
        self, items: list[dict[str, Any]], *, dry_run: bool = False, planned: Planned | None = None
    ) -> list[str]:
        """Suggestions, each tied to one version (documentId, documentCreatedAt)."""
        outcomes, valid = _screen(items, _check_suggestion)
        pipe = pipeline()
        for position in valid:
            item = items[position]
            pipe.exists(keys.document_version(item["documentId"], item["documentCreatedAt"]))
            pipe.hgetall(keys.document_suggestion(item["documentId"], item["id"]))
        replies = pipe.execute()
        write = Write()
        for n, position in enumerate(valid):
            item, version_exists, raw = items[position], replies[2 * n], replies[2 * n + 1]
            version = (item["documentId"], item["documentCreatedAt"])
            existing = Suggestion.view(raw)
            if existing is not None:
                outcomes[position] = _same(existing, item, SUGGESTION_FIELDS)
            elif not version_exists and not (planned and version in planned.versions):
                outcomes[position] = f"document version not imported: {item['documentId']}@{item['documentCreatedAt']}"
            else:
                outcomes[position] = WRITTEN

                def store(p: Any, i: dict[str, Any] = item) -> None:
                    p.hset(keys.document_suggestion(i["documentId"], i["id"]), mapping=Suggestion.build(i).encode())
                    p.zadd(keys.document_suggestions(i["documentId"]), {i["id"]: i["documentCreatedAt"]})

                write.step(store)
        if not dry_run and write:
            write.execute()
        return outcomes  # type: ignore[return-value]


# --- validation and encoding ---------------------------------------------------------------------
def _check_user(item: dict[str, Any]) -> str | None:
    email = item["email"]
    if not email or len(email) > 254 or any(c in email for c in "{}:") or any(c.isspace() for c in email):
        return f"invalid email: {email!r}"
    if item.get("type", "free") not in USER_TYPES:
        return f"invalid type: {item.get('type')!r}"
    return _bad_ids(item, "id") or _bad_time(item, "createdAt")


def _check_chat(item: dict[str, Any]) -> str | None:
    if item.get("visibility") not in VISIBILITIES:
        return f"invalid visibility: {item.get('visibility')!r}"
    if not isinstance(item.get("title"), str):
        return "invalid title: not text"
    if item.get("lastMessageAt") is not None and _bad_time(item, "lastMessageAt"):
        return _bad_time(item, "lastMessageAt")
    return _bad_ids(item, "id", "userId") or _bad_time(item, "createdAt")


def _check_message(item: dict[str, Any]) -> str | None:
    problem = _bad_ids(item, "id", "chatId") or _bad_time(item, "createdAt")
    if problem:
        return problem
    if item.get("role") not in ROLES:
        return f"invalid role: {item.get('role')!r}"
    if not isinstance(item.get("parts"), list):
        return "invalid parts: not a list"
    if not isinstance(item.setdefault("attachments", []), list):
        return "invalid attachments: not a list"
    if not isinstance(item.get("content"), str) or not item["content"]:
        item["content"] = text_of(item["parts"])
    return None


def _check_version(item: dict[str, Any]) -> str | None:
    if item.get("kind") not in KINDS:
        return f"invalid kind: {item.get('kind')!r}"
    if not isinstance(item.get("title"), str):
        return "invalid title: not text"
    if item.get("content") is not None and not isinstance(item["content"], str):
        return "invalid content: not text"
    item["content"] = item.get("content") or None
    return _bad_ids(item, "id", "userId") or _bad_time(item, "createdAt")


def _check_suggestion(item: dict[str, Any]) -> str | None:
    for name in ("originalText", "suggestedText"):
        if not isinstance(item.get(name), str):
            return f"invalid {name}: not text"
    item["description"] = item.get("description") or None
    item["isResolved"] = bool(item.get("isResolved"))
    return _bad_ids(item, "id", "documentId", "userId") or _bad_time(item, "documentCreatedAt", "createdAt")


imports = ImportManager()
