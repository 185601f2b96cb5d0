"""Find (and with ``fix=True`` repair) what a crash or a bug left behind in the storage keys.

Writes span hash slots in a fixed order (entity first, index last; unindex first, entity
last), so a crash between two steps leaves an entity missing from its index or an index
entry without its entity. This module SCANs the prefix (maintenance only), recognises each
storage key by the shapes ``storage.keys`` builds, and checks it against the keys it should
agree with:

- index entries without entities (users, users by type, a user's chats and documents, a
  chat's messages, votes, a document's versions and suggestions);
- entities missing from their indexes (user, chat, message, document, document version,
  suggestion) and message lookups or email claims that are missing or point elsewhere;
- orphans: chats and documents without an owner, messages without a chat.

Checks are registered (:func:`register_check`): the storage checks below register
themselves, and every installed app's ``checks`` module may register its own (the semantic
search app compares the vector store with Redis). Every problem carries its fix; :func:`run`
applies them and scans again until a pass finds nothing (a fix can reveal another problem: a
deleted orphan chat leaves index entries).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import autodiscover_modules

from mookti import outbox
from mookti.progress import progress as progress_bar
from mookti.redis import Write, current_prefix, get_redis, glob_escape, pipeline, register_script
from storage import keys
from storage.entities import Message, MessageLookup, compact_id, expand_id
from storage.entities.records import ROLE_CODES
from storage.managers import lookups
from storage.managers.chats import ChatManager
from storage.managers.documents import DocumentManager
from storage.managers.users import USER_TYPES
from storage.portability.imports import MERGE_DOCUMENT

SCAN_BATCH = 500
MAX_PASSES = 4
SHOWN = 30

# KEYS[1] string; ARGV[1] expected value. Deletes it only if it still holds that value.
DELETE_IF_EQUAL = register_script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)
# KEYS[1] hash; ARGV[1] field, ARGV[2] the value seen. Removes the field only if it still holds it.
HDEL_IF_EQUAL = register_script(
    """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""
)


@dataclass
class Problem:
    kind: str
    key: str
    detail: str
    fix: Callable[[Write], None] | None = None  # None: needs a person, reported only


@dataclass
class RepairReport:
    found: Counter = field(default_factory=Counter)
    examples: list[Problem] = field(default_factory=list)
    fixed: int = 0
    unfixable: int = 0
    remaining: int = 0
    scanned: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        self.found[problem.kind] += 1
        if len(self.examples) < SHOWN:
            self.examples.append(problem)

    @property
    def problems(self) -> int:
        return sum(self.found.values())


# --- registration ----------------------------------------------------------------------------------
ID = r"[^{}:]+"
KeyChecker = Callable[[list[tuple[str, ...]]], list[Problem]]
PassChecker = Callable[[RepairReport], list[Problem]]


@dataclass(frozen=True)
class Check:
    """A registered check: per key shape (``key`` given) or one pass after the scan."""

    name: str
    run: KeyChecker | PassChecker
    key: Callable[..., str] | None = None
    groups: tuple[str, ...] = ()
    external: bool = False


_checks: dict[str, Check] = {}
_discovered: list[bool] = []


def register_check(
    name: str,
    run: KeyChecker | PassChecker,
    *,
    key: Callable[..., str] | None = None,
    groups: tuple[str, ...] = (),
    external: bool = False,
) -> None:
    """Add (or replace) a check.

    With ``key`` (a ``keys`` module builder) and ``groups`` (a regex per argument of it), ``run``
    gets the argument tuples of every scanned key of that shape; without ``key`` it runs once
    after the scan as ``run(report)``. ``external`` checks read a service outside Redis (the
    vector store): ``run(vectors=False)`` and the follow-up passes of a fix leave them out.
    """
    _checks[name] = Check(name, run, key, groups, external)


def registered_checks() -> list[Check]:
    """Every check; each installed app's ``checks`` module registers its own when first asked."""
    if not _discovered:
        _discovered.append(True)
        autodiscover_modules("checks")
    return list(_checks.values())


# --- recognising keys ------------------------------------------------------------------------------
def _compile(checks: list[Check]) -> list[tuple[KeyChecker, re.Pattern[str]]]:
    """A regex per key shape, built from the key builder itself (placeholders become groups)."""
    compiled = []
    for check in checks:
        if check.key is None:
            continue
        marks = [f"\x00{n}\x00" for n in range(len(check.groups))]
        pattern = re.escape(check.key(*marks))
        for mark, group in zip(marks, check.groups, strict=True):
            pattern = pattern.replace(re.escape(mark), f"({group})")
        compiled.append((check.run, re.compile(pattern)))  # type: ignore[arg-type]
    return compiled


def classify(name: str, shapes: list[tuple[KeyChecker, re.Pattern[str]]]) -> tuple[KeyChecker, tuple[str, ...]] | None:
    for run, pattern in shapes:
        match = pattern.fullmatch(name)
        if match:
            return run, match.groups()
    return None


def scan(progress: bool | None = None) -> Iterator[list[str]]:
    """Every key under the prefix, in batches (SCAN: maintenance only)."""
    show = progress if progress is not None else sys.stderr.isatty()
    batch: list[str] = []
    with progress_bar(desc="keys", unit="key", enabled=show) as bar:
        for name in get_redis().scan_iter(match=glob_escape(current_prefix()) + "*", count=1000):
            batch.append(name)
            if len(batch) >= SCAN_BATCH:
                bar.update(len(batch))
                yield batch
                batch = []
        bar.update(len(batch))
    if batch:
        yield batch


# --- checks, one per key shape ---------------------------------------------------------------------
def _read(queue: Callable[[Any], None]) -> list[Any]:
    pipe = pipeline()
    queue(pipe)
    return pipe.execute()


def _unset(key: str, value: str) -> Callable[[Write], None]:
    """A fix that deletes a pointer key only if it still holds the wrong value seen."""
    return lambda w: w.step(lambda p: DELETE_IF_EQUAL(keys=[key], args=[value], client=p))


def dangling_members(
    index: str, members: list[str], present: list[Any], label: str, remove: Callable[[Any, str], Any]
) -> list[Problem]:
    """Members of an index (ZSET or HASH) whose entity is gone (``present`` says, member by member);
    the fix removes them with ``remove``."""
    return [
        Problem("index entry without entity", index, f"{label} {m}", lambda w, m=m: w.step(lambda p: remove(p, m)))
        for m, exists in zip(members, present, strict=True)
        if not exists
    ]


def _keys_exist(names: list[str]) -> list[Any]:
    return _read(lambda p: [p.exists(n) for n in names])


def _messages_exist(chat_id: str, message_ids: list[str]) -> list[bool]:
    """Which of these messages the chat holds, in its message data or still in the old layout
    (moved by this same repair: their votes and index entries stay)."""
    replies = _read(
        lambda p: [
            (p.hexists(keys.chat_message_data(chat_id), m), p.exists(keys.old_chat_message(chat_id, m)))
            for m in message_ids
        ]
    )
    return [bool(new or old) for new, old in zip(replies[::2], replies[1::2], strict=True)]


def check_users_index(found: list[tuple[str, ...]]) -> list[Problem]:
    members = get_redis().zrange(keys.users(), 0, -1)
    exists = _read(lambda p: [p.exists(keys.user(u)) for u in members])
    problems = []
    for user_id, present in zip(members, exists, strict=True):
        if not present:

            def fix(w: Write, u: str = user_id) -> None:
                w.step(lambda p: p.zrem(keys.users(), u))
                for user_type in USER_TYPES:
                    w.step(lambda p, t=user_type: p.zrem(keys.users_by_type(t), u))

            problems.append(Problem("index entry without entity", keys.users(), f"user {user_id}", fix))
    return problems


def check_users_by_type(found: list[tuple[str, ...]]) -> list[Problem]:
    problems = []
    for (user_type,) in found:
        index = keys.users_by_type(user_type)
        members = get_redis().zrange(index, 0, -1)
        types = _read(lambda p, ms=members: [p.hget(keys.user(u), "type") for u in ms])
        for user_id, actual in zip(members, types, strict=True):
            if actual != user_type:
                problems.append(
                    Problem(
                        "index entry without entity",
                        index,
                        f"user {user_id} is {'missing' if actual is None else actual!r}",
                        lambda w, i=index, u=user_id: w.step(lambda p: p.zrem(i, u)),
                    )
                )
    return problems


def check_user(found: list[tuple[str, ...]]) -> list[Problem]:
    ids = [g[0] for g in found]
    raws = _read(lambda p: [p.hmget(keys.user(u), "id", "email", "type", "createdAt") for u in ids])
    checks = _read(
        lambda p: [
            (
                p.zscore(keys.users(), u),
                p.zscore(keys.users_by_type(r[2] or "free"), u),
                p.get(keys.user_email(r[1] or "")),
            )
            for u, r in zip(ids, raws, strict=True)
        ]
    )
    problems = []
    for n, (user_id, (_, email, user_type, created)) in enumerate(zip(ids, raws, strict=True)):
        in_users, in_type, claim = checks[3 * n : 3 * n + 3]
        score = int(created or 0)
        if in_users is None or in_type is None:

            def index(w: Write, u: str = user_id, t: str = user_type or "free", s: int = score) -> None:
                w.step(lambda p: p.zadd(keys.users(), {u: s}))
                w.step(lambda p: p.zadd(keys.users_by_type(t), {u: s}))

            problems.append(Problem("entity missing from its index", keys.users(), f"user {user_id}", index))
        if email and claim is None:
            problems.append(
                Problem(
                    "email claim missing",
                    keys.user_email(email),
                    f"user {user_id}",
                    lambda w, e=email, u=user_id: w.step(lambda p: p.set(keys.user_email(e), u, nx=True)),
                )
            )
        elif email and claim != user_id:
            problems.append(
                Problem("email claimed by another user", keys.user_email(email), f"user {user_id} vs {claim}")
            )
    return problems


def check_email_claims(found: list[tuple[str, ...]]) -> list[Problem]:
    emails = [g[0] for g in found]
    owners = _read(lambda p: [p.get(keys.user_email(e)) for e in emails])
    actual = _read(lambda p: [p.hget(keys.user(o), "email") if o else p.echo("") for o in owners])
    problems = []
    for email, owner, owner_email in zip(emails, owners, actual, strict=True):
        if owner and owner_email != email:
            problems.append(
                Problem(
                    "email claim pointing to a missing user",
                    keys.user_email(email),
                    f"user {owner}",
                    _unset(keys.user_email(email), owner),
                )
            )
    return problems


def _owned_index(kind: str, index_of: Callable[[str], str], entity_of: Callable[[str], str]):
    """A user's index (chats, documents) whose members must be entities owned by that user."""

    def check(found: list[tuple[str, ...]]) -> list[Problem]:
        problems = []
        for (user_id,) in found:
            index = index_of(user_id)
            members = get_redis().zrange(index, 0, -1)
            owners = _read(lambda p, ms=members: [p.hget(entity_of(m), "userId") for m in ms])
            for member, owner in zip(members, owners, strict=True):
                if owner != user_id:
                    problems.append(
                        Problem(
                            "index entry without entity",
                            index,
                            f"{kind} {member}" + (f" belongs to {owner}" if owner else ""),
                            lambda w, i=index, m=member: w.step(lambda p: p.zrem(i, m)),
                        )
                    )
        return problems

    return check


def _delete_chat(chat_id: str, user_id: str) -> Callable[[Write], None]:
    def fix(w: Write) -> None:
        message_ids = get_redis().zrange(keys.chat_messages(chat_id), 0, -1)
        ChatManager._stage_delete(w, {"id": chat_id, "userId": user_id}, message_ids)

    return fix


def check_chat(found: list[tuple[str, ...]]) -> list[Problem]:
    ids = [g[0] for g in found]
    raws = _read(lambda p: [p.hmget(keys.chat(c), "userId", "createdAt", "lastMessageAt") for c in ids])
    checks = _read(
        lambda p: [
            (
                p.exists(keys.user(r[0] or "-")),
                p.zscore(keys.user_chats(r[0] or "-"), c),
                p.zscore(keys.user_chats_by_activity(r[0] or "-"), c),
            )
            for c, r in zip(ids, raws, strict=True)
        ]
    )
    problems = []
    for n, (chat_id, (owner, created, last)) in enumerate(zip(ids, raws, strict=True)):
        owner_exists, by_created, by_activity = checks[3 * n : 3 * n + 3]
        if not owner or not owner_exists:
            problems.append(
                Problem("chat without owner", keys.chat(chat_id), f"owner {owner}", _delete_chat(chat_id, owner or "-"))
            )
        elif by_created is None or by_activity is None:

            def index(w: Write, c: str = chat_id, u: str = owner, a: int = int(created or 0), b: int = int(last or 0)):
                w.step(lambda p: p.zadd(keys.user_chats(u), {c: a}, nx=True))
                w.step(lambda p: p.zadd(keys.user_chats_by_activity(u), {c: b or a}, nx=True))

            problems.append(Problem("entity missing from its index", keys.user_chats(owner), f"chat {chat_id}", index))
    return problems


def unindexed(index: str, what: str, member: str, score: int) -> Problem:
    """An entity missing from its ZSET index; the fix adds it back with its score."""

    def add_back(write: Write) -> None:
        write.step(lambda p: p.zadd(index, {member: score}))

    return Problem("entity missing from its index", index, f"{what} {member}", add_back)


def check_chat_messages(found: list[tuple[str, ...]]) -> list[Problem]:
    """Members whose message is gone, with or without the chat (messages that are still there but
    have no chat are reported, and removed with the index, as messages without chat)."""
    problems = []
    for (chat_id,) in found:
        members = get_redis().zrange(keys.chat_messages(chat_id), 0, -1)
        problems += dangling_members(
            keys.chat_messages(chat_id),
            members,
            _messages_exist(chat_id, members),
            "message",
            lambda p, m, c=chat_id: (p.zrem(keys.chat_messages(c), m), p.hdel(keys.chat_votes(c), m)),
        )
    return problems


def check_message_data(found: list[tuple[str, ...]]) -> list[Problem]:
    """Every message of a chat: readable, indexed, found by its id; none without its chat."""
    problems = []
    for (chat_id,) in found:
        data = keys.chat_message_data(chat_id)
        values = dict(get_redis().hscan_iter(data, count=1000))
        ids = list(values)
        owner, scores = _read(
            lambda p, c=chat_id: [
                p.hget(keys.chat(c), "userId"),
                p.zrange(keys.chat_messages(c), 0, -1, withscores=True),
            ]
        )
        seen = [lookups.parse(v) for v in _read(lambda p, ms=ids: [lookups.queue_read(p, m) for m in ms])]
        if not owner:
            problems.append(
                Problem("messages without chat", data, f"{len(ids)} messages", _remove_messages(chat_id, ids, seen))
            )
            continue
        indexed = dict(scores)
        expected = MessageLookup(chat_id, owner)
        for message_id, lookup in zip(ids, seen, strict=True):
            try:
                created = Message.from_value(chat_id, message_id, values[message_id]).createdAt
            except ValueError as exc:
                problems.append(Problem("message unreadable", data, f"{message_id}: {exc}"))
                continue
            if message_id not in indexed:
                problems.append(unindexed(keys.chat_messages(chat_id), "message", message_id, created))
            if lookup != expected and (not lookup or lookup.chatId == chat_id):
                problems.append(
                    Problem(
                        "message lookup missing or wrong",
                        keys.message_lookups(message_id),
                        f"{message_id}: {lookup}, should be {expected}",
                        lambda w, m=message_id, v=expected: lookups.stage_set(w, m, v.chatId, v.ownerId),
                    )
                )
    return problems


def _remove_messages(chat_id: str, message_ids: list[str], seen: list[MessageLookup | None]) -> Callable[[Write], None]:
    """The fix for messages without a chat: their lookups (those that still point here), then the
    chat's message keys, and the search index's copies."""

    def remove(w: Write) -> None:
        owner = next((s.ownerId for s in seen if s and s.chatId == chat_id), None)
        for message_id, lookup in zip(message_ids, seen, strict=True):
            if lookup and lookup.chatId == chat_id:
                bucket, name, value = keys.message_lookups(message_id), compact_id(message_id), lookup.encode()
                w.step(lambda p, b=bucket, n=name, v=value: HDEL_IF_EQUAL(keys=[b], args=[n, v], client=p))
        chat_keys = [keys.chat_message_data(chat_id), keys.chat_messages(chat_id), keys.chat_votes(chat_id)]
        w.step(lambda p: p.delete(*chat_keys))
        outbox.stage(w, "delete", kind="message", userId=owner, chatId=chat_id, messageIds=",".join(message_ids))

    return remove


def check_old_chat_message(found: list[tuple[str, ...]]) -> list[Problem]:
    """Messages still in the per-message hashes of the old layout: the fix moves each into its
    chat's message data (unless a message of that id is there already) and removes the hash."""
    raws = _read(lambda p: [p.hgetall(keys.old_chat_message(c, m)) for c, m in found])
    problems = []
    for (chat_id, message_id), raw in zip(found, raws, strict=True):
        message = Message.from_hash(chat_id, message_id, raw)
        old = keys.old_chat_message(chat_id, message_id)
        if message is None or message.role not in ROLE_CODES:
            problems.append(Problem("message unreadable", old, f"{message_id}: {raw}"))
            continue
        value = message.value()

        def move(w: Write, c: str = chat_id, m: str = message_id, v: str = value, o: str = old) -> None:
            w.step(lambda p: (p.hsetnx(keys.chat_message_data(c), m, v), p.delete(o)))

        problems.append(Problem("message in the old layout", old, "", move))
    return problems


def check_lookup_buckets(found: list[tuple[str, ...]]) -> list[Problem]:
    """Lookups (bucket fields) whose message is gone, or that sit in the wrong bucket."""
    problems = []
    for (bucket,) in found:
        name = keys.message_lookup_bucket(bucket)
        entries = list(get_redis().hscan_iter(name, count=1000))
        parsed = []
        for field_name, value in entries:
            try:
                parsed.append((field_name, value, expand_id(field_name), MessageLookup.decode(value)))
            except ValueError:
                parsed.append((field_name, value, field_name, None))
        present = _read(
            lambda p, ps=parsed: [p.hexists(keys.chat_message_data(lk.chatId if lk else "-"), m) for _, _, m, lk in ps]
        )
        for (field_name, value, message_id, lookup), exists in zip(parsed, present, strict=True):
            if not exists or keys.message_lookups(message_id) != name:
                problems.append(
                    Problem(
                        "message lookup in the wrong bucket" if exists else "message lookup pointing nowhere",
                        name,
                        f"{message_id} -> {lookup}",
                        lambda w, n=name, f=field_name, v=value: w.step(
                            lambda p: HDEL_IF_EQUAL(keys=[n], args=[f, v], client=p)
                        ),
                    )
                )
    return problems


def check_old_lookups(found: list[tuple[str, ...]], key_of: Callable[[str], str]) -> list[Problem]:
    """Lookups as written before (``message-chat:{id}`` STRINGs, ``message-chats:{bucket}``
    hashes): the message data checks write them anew, so the fix removes these."""
    names = [key_of(n) for (n,) in found]
    return [
        Problem("message lookups in the old format", k, "", lambda w, k=k: w.step(lambda p: p.delete(k))) for k in names
    ]


def check_chat_parts(found: list[tuple[str, ...]], kind: str, key_of: Callable[[str], str]) -> list[Problem]:
    """Votes and stream ids of a chat that no longer exists."""
    ids = [g[0] for g in found]
    exists = _read(lambda p: [p.exists(keys.chat(c)) for c in ids])
    orphans = [key_of(c) for c, present in zip(ids, exists, strict=True) if not present]
    return [Problem(f"{kind} without chat", k, "", lambda w, k=k: w.step(lambda p: p.delete(k))) for k in orphans]


def check_votes(found: list[tuple[str, ...]]) -> list[Problem]:
    problems = check_chat_parts(found, "votes", keys.chat_votes)
    gone = {p.key for p in problems}
    for (chat_id,) in found:
        index = keys.chat_votes(chat_id)
        if index not in gone:
            voted = get_redis().hkeys(index)
            problems += dangling_members(
                index,
                voted,
                _messages_exist(chat_id, voted),
                "vote on message",
                lambda p, m, i=index: p.hdel(i, m),
            )
    return problems


def _delete_document(document_id: str, user_id: str | None) -> Callable[[Write], None]:
    def fix(w: Write) -> None:
        stamps = get_redis().zrange(keys.document_versions(document_id), 0, -1)
        suggestions = get_redis().zrange(keys.document_suggestions(document_id), 0, -1)
        if user_id:
            w.step(lambda p: p.zrem(keys.user_documents(user_id), document_id))
        DocumentManager._stage_remove(w, document_id, stamps, suggestions, whole=True)
        outbox.stage(w, "delete_document", userId=user_id, documentId=document_id)

    return fix


def _resummarize(document_id: str) -> Callable[[Write], None]:
    """Rebuild a document's summary hash and owner index from its version hashes."""

    def fix(w: Write) -> None:
        stamps = get_redis().zrange(keys.document_versions(document_id), 0, -1)
        first, last = _read(
            lambda p: [p.hgetall(keys.document_version(document_id, int(s))) for s in (stamps[0], stamps[-1])]
        )
        args = [document_id, first["userId"], int(stamps[0]), int(stamps[-1]), last["title"], last["kind"]]
        w.step(lambda p: MERGE_DOCUMENT(keys=[keys.document(document_id)], args=args, client=p))
        w.step(lambda p: p.zadd(keys.user_documents(first["userId"]), {document_id: int(stamps[0])}, lt=True))

    return fix


def check_document(found: list[tuple[str, ...]]) -> list[Problem]:
    ids = [g[0] for g in found]
    raws = _read(lambda p: [p.hmget(keys.document(d), "userId", "createdAt") for d in ids])
    checks = _read(
        lambda p: [
            (
                p.exists(keys.user(r[0] or "-")),
                p.zscore(keys.user_documents(r[0] or "-"), d),
                p.zcard(keys.document_versions(d)),
            )
            for d, r in zip(ids, raws, strict=True)
        ]
    )
    problems = []
    for n, (document_id, (owner, created)) in enumerate(zip(ids, raws, strict=True)):
        owner_exists, indexed, versions = checks[3 * n : 3 * n + 3]
        if not owner or not owner_exists:
            problems.append(
                Problem(
                    "document without owner",
                    keys.document(document_id),
                    f"owner {owner}",
                    _delete_document(document_id, owner),
                )
            )
        elif not versions:
            problems.append(
                Problem(
                    "document without versions", keys.document(document_id), "", _delete_document(document_id, owner)
                )
            )
        elif indexed is None:
            problems.append(unindexed(keys.user_documents(owner), "document", document_id, int(created or 0)))
    return problems


def check_document_versions(found: list[tuple[str, ...]]) -> list[Problem]:
    problems = []
    for (document_id,) in found:
        index = keys.document_versions(document_id)
        stamps = get_redis().zrange(index, 0, -1)
        missing = dangling_members(
            index,
            stamps,
            _keys_exist([keys.document_version(document_id, int(s)) for s in stamps]),
            "version",
            lambda p, s, i=index: p.zrem(i, s),
        )
        problems += missing
        if not get_redis().exists(keys.document(document_id)) and len(missing) < len(stamps):
            problems.append(
                Problem("document versions without document", keys.document(document_id), "", _resummarize(document_id))
            )
    return problems


def check_document_version(found: list[tuple[str, ...]]) -> list[Problem]:
    scores = _read(lambda p: [p.zscore(keys.document_versions(d), s) for d, s in found])
    return [
        Problem(
            "document version not indexed",
            keys.document_versions(document_id),
            f"version {stamp}",
            lambda w, d=document_id, s=int(stamp): w.step(lambda p: p.zadd(keys.document_versions(d), {str(s): s})),
        )
        for (document_id, stamp), score in zip(found, scores, strict=True)
        if score is None
    ]


def check_document_suggestions(found: list[tuple[str, ...]]) -> list[Problem]:
    problems = []
    for (document_id,) in found:
        index = keys.document_suggestions(document_id)
        suggestions = get_redis().zrange(index, 0, -1)
        problems += dangling_members(
            index,
            suggestions,
            _keys_exist([keys.document_suggestion(document_id, m) for m in suggestions]),
            "suggestion",
            lambda p, m, i=index: p.zrem(i, m),
        )
    return problems


def check_document_suggestion(found: list[tuple[str, ...]]) -> list[Problem]:
    raws = _read(
        lambda p: [
            (
                p.exists(keys.document(d)),
                p.zscore(keys.document_suggestions(d), s),
                p.hget(keys.document_suggestion(d, s), "documentCreatedAt"),
            )
            for d, s in found
        ]
    )
    problems = []
    for n, (document_id, suggestion_id) in enumerate(found):
        document_exists, score, version = raws[3 * n : 3 * n + 3]
        key = keys.document_suggestion(document_id, suggestion_id)
        if not document_exists:
            problems.append(
                Problem("suggestion without document", key, "", lambda w, k=key: w.step(lambda p: p.delete(k)))
            )
        elif score is None:
            problems.append(
                unindexed(keys.document_suggestions(document_id), "suggestion", suggestion_id, int(version or 0))
            )
    return problems


for _name, _key, _groups, _run in [
    ("users", keys.users, (), check_users_index),
    ("users_by_type", keys.users_by_type, (ID,), check_users_by_type),
    ("user", keys.user, (ID,), check_user),
    ("user_email", keys.user_email, (r"[^{}]+",), check_email_claims),
    ("user_chats", keys.user_chats, (ID,), _owned_index("chat", keys.user_chats, keys.chat)),
    (
        "user_chats_by_activity",
        keys.user_chats_by_activity,
        (ID,),
        _owned_index("chat", keys.user_chats_by_activity, keys.chat),
    ),
    ("user_documents", keys.user_documents, (ID,), _owned_index("document", keys.user_documents, keys.document)),
    ("chat", keys.chat, (ID,), check_chat),
    ("chat_messages", keys.chat_messages, (ID,), check_chat_messages),
    ("chat_message_data", keys.chat_message_data, (ID,), check_message_data),
    ("old_chat_message", keys.old_chat_message, (ID, ID), check_old_chat_message),
    ("chat_votes", keys.chat_votes, (ID,), check_votes),
    ("chat_streams", keys.chat_streams, (ID,), lambda found: check_chat_parts(found, "stream ids", keys.chat_streams)),
    ("message_lookups", keys.message_lookup_bucket, (r"[0-9a-f]+",), check_lookup_buckets),
    ("old_message_chat", keys.old_message_chat, (ID,), lambda found: check_old_lookups(found, keys.old_message_chat)),
    (
        "old_message_lookups",
        keys.old_message_lookup_bucket,
        (r"[0-9a-f]{2}",),
        lambda found: check_old_lookups(found, keys.old_message_lookup_bucket),
    ),
    ("document", keys.document, (ID,), check_document),
    ("document_versions", keys.document_versions, (ID,), check_document_versions),
    ("document_version", keys.document_version, (ID, r"\d+"), check_document_version),
    ("document_suggestions", keys.document_suggestions, (ID,), check_document_suggestions),
    ("document_suggestion", keys.document_suggestion, (ID, ID), check_document_suggestion),
]:
    register_check(_name, _run, key=_key, groups=_groups)


# --- the run ---------------------------------------------------------------------------------------
def find_problems(
    progress: bool | None = None, report: RepairReport | None = None, vectors: bool = True
) -> list[Problem]:
    """Scan once, hand each key shape's keys to its check, then run the checks of whole passes.

    ``vectors`` runs the external checks too (they compare the vector store with Redis).
    """
    report = report if report is not None else RepairReport()
    checks = [c for c in registered_checks() if vectors or not c.external]
    shapes = _compile(checks)
    problems: list[Problem] = []
    report.scanned = 0
    for batch in scan(progress):
        report.scanned += len(batch)
        grouped: dict[KeyChecker, list[tuple[str, ...]]] = {}
        for name in batch:
            shape = classify(name, shapes)
            if shape:
                grouped.setdefault(shape[0], []).append(shape[1])
        for run, found in grouped.items():
            problems.extend(run(found))
    for check in checks:
        if check.key is None:
            problems.extend(check.run(report))  # type: ignore[arg-type]
    return problems


def run(fix: bool = False, progress: bool | None = None, vectors: bool = True) -> RepairReport:
    """Report every problem; with ``fix`` repair them and scan again until nothing is left.

    ``vectors`` also compares the vector store with Redis (when the store can list its ids).
    Vector fixes only enqueue indexing work, so the follow-up scans leave vectors out.
    """
    report = RepairReport()
    problems = find_problems(progress, report, vectors)
    for problem in problems:
        report.add(problem)
    if not fix:
        report.remaining = len(problems)
        return report
    for _ in range(MAX_PASSES):
        fixable = [p for p in problems if p.fix is not None]
        for problem in fixable:
            write = Write()
            problem.fix(write)  # type: ignore[misc]
            write.execute()
        report.fixed += len(fixable)
        problems = find_problems(progress, RepairReport(), vectors=False)
        new = [p for p in problems if p.fix is not None]
        for problem in new:
            report.add(problem)
        if not new:
            break
    report.unfixable = sum(1 for p in problems if p.fix is None)
    report.remaining = len(problems)
    return report
