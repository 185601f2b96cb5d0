"""Documents (artifacts): every save is a new version; suggestions belong to a version.

``document:{did}`` holds the owner and the latest version's title and kind;
``document:{did}:versions`` (ZSET) indexes ``document:{did}:version:{createdAt}`` hashes and
``document:{did}:suggestions`` (ZSET by the version's createdAt) the suggestion hashes. All
share the document's slot.
"""

from __future__ import annotations

from typing import Any

from mookti import events, outbox
from mookti.errors import Conflict, NotFound
from mookti.ids import new_id, now_us
from mookti.redis import Write, get_redis, next_guard_token, pipeline, register_script
from storage import keys
from storage.entities import Document, Suggestion
from storage.managers.common import flat
from storage.managers.paging import PageRequest
from storage.managers.revisions import Revision, touch_document

KINDS = ("text", "code", "image", "sheet")

# KEYS[1] document summary, KEYS[2] versions ZSET, KEYS[3] the version expected to be the latest;
# ARGV[1] its time. The summary follows that version if it is still the latest (a save that came in
# between already set the summary to its own, newer version). Every key is declared in KEYS.
RESUMMARIZE = register_script(
    """
local latest = redis.call('ZRANGE', KEYS[2], -1, -1)[1]
if latest ~= ARGV[1] then return 0 end
local fields = redis.call('HMGET', KEYS[3], 'title', 'kind')
redis.call('HSET', KEYS[1], 'title', fields[1] or '', 'kind', fields[2] or 'text', 'updatedAt', latest)
return 1
"""
)


decode_version = Document.view
decode_suggestion = Suggestion.view


# KEYS[1] document summary, KEYS[2] versions ZSET, KEYS[3] the version hash for the time ARGV[1]
# (microseconds, whole milliseconds), KEYS[4] (optional) the save's idempotency guard; ARGV[2] the
# guard's TTL (ms), then the version's field/value pairs (userId among them).
# A guard that exists means this request saved its version before (a replay): nothing is written and
# the reply is {3, that version's createdAt, the first createdAt}.
# Writes the version, its index entry and the summary in one step if ARGV[1] is at least 1 ms after
# the newest version; otherwise writes nothing and replies {2, the earliest time allowed}, and the
# caller tries again with that time (every key is declared in KEYS, so the time cannot be picked
# inside the script). Replies {0} (someone else's document) or {1, createdAt, the first createdAt}.
SAVE_VERSION = register_script(
    """
if KEYS[4] then
  local saved = redis.call('GET', KEYS[4])
  if saved then return {3, saved, redis.call('HGET', KEYS[1], 'createdAt') or saved} end
end
local fields = {}
for i = 3, #ARGV, 2 do fields[ARGV[i]] = ARGV[i + 1] end
local owner = redis.call('HGET', KEYS[1], 'userId')
if owner and owner ~= fields['userId'] then return {0} end
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
if newest and tonumber(newest) + 1000 > tonumber(ARGV[1]) then
  return {2, string.format('%.0f', tonumber(newest) + 1000)}
end
local stamp = ARGV[1]
fields['createdAt'] = stamp
local pairs_ = {}
for name, value in pairs(fields) do table.insert(pairs_, name); table.insert(pairs_, value) end
redis.call('HSET', KEYS[3], unpack(pairs_))
redis.call('ZADD', KEYS[2], stamp, stamp)
redis.call('HSETNX', KEYS[1], 'createdAt', stamp)
redis.call('HSET', KEYS[1], 'id', fields['id'], 'userId', fields['userId'], 'title', fields['title'],
  'kind', fields['kind'], 'updatedAt', stamp)
if KEYS[4] then redis.call('SET', KEYS[4], stamp, 'PX', ARGV[2]) end
return {1, stamp, redis.call('HGET', KEYS[1], 'createdAt')}
"""
)
# Concurrent saves of one document each take the next free millisecond: a save tries at most this often.
SAVE_ATTEMPTS = 100


def _owned(raw_meta: dict[str, str], actor_id: str | None) -> dict[str, str]:
    if not raw_meta or raw_meta.get("userId") != actor_id:
        raise NotFound("document")
    return raw_meta


def _owned_with(
    actor_id: str | None,
    document_id: str,
    index_key: str,
    start: int = 0,
    stop: int = -1,
    rev: Revision | None = None,
):
    """The actor's document summary and members of one of its indexes, in one round trip."""
    pipe = pipeline()
    pipe.hgetall(keys.document(document_id))
    pipe.zrange(index_key, start, stop)
    if rev:
        rev.queue(pipe)
    meta, members, *version = pipe.execute()
    owned = _owned(meta, actor_id)
    if rev:
        rev.check(version[0])
    return owned, members


class DocumentManager:
    def save(
        self, actor_id: str, *, document_id: str | None, title: str, kind: str, content: str | None
    ) -> dict[str, Any]:
        """saveDocument: a new version (createdAt = now) of a new or an own document.

        The version's time is its identity, so it is chosen inside the atomic write: after the
        newest version, never two in one millisecond, however many saves run at once.
        """
        document_id = document_id or new_id()
        saved = Document(document_id, actor_id, title, kind, content or None)
        at, fields = now_us(), flat(saved.encode())
        # Inside an Idempotency-Key request the save carries a guard in the document's slot, checked
        # and set in the same Lua step: a replay finds the version its first attempt saved.
        token = next_guard_token()
        guard = [keys.document_save_guard(document_id, token[0])] if token else []
        for _ in range(SAVE_ATTEMPTS):
            reply = SAVE_VERSION(
                keys=[
                    keys.document(document_id),
                    keys.document_versions(document_id),
                    keys.document_version(document_id, at),
                    *guard,
                ],
                args=[at, token[1] if token else 0, *fields],
            )
            if int(reply[0]) != 2:
                break
            at = int(reply[1])
        else:
            raise Conflict("Too many saves of this document at once; try again.")
        if not int(reply[0]):
            raise NotFound("document")
        saved.createdAt, first = int(reply[1]), int(reply[2])
        write = Write()
        touch_document(write, document_id)
        write.step(lambda p: p.zadd(keys.user_documents(actor_id), {document_id: first}))
        outbox.stage(write, "upsert", kind="document", userId=actor_id, documentId=document_id)
        version = saved.to_dict()
        # A replay re-runs the rest (it completes a first attempt that stopped after the version); the
        # Write's own guards (one per step on a cluster) make it a no-op where it was applied.
        events.stage(write, actor_id, "document.saved", {k: version[k] for k in ("id", "title", "kind", "createdAt")})
        write.execute()
        return version

    def versions(self, actor_id: str | None, document_id: str, rev: Revision | None = None) -> list[dict[str, Any]]:
        """getDocumentsById: all versions, oldest first."""
        _, stamps = _owned_with(actor_id, document_id, keys.document_versions(document_id), rev=rev)
        return self._load_versions(document_id, stamps)

    def latest(self, actor_id: str | None, document_id: str, rev: Revision | None = None) -> dict[str, Any]:
        """getDocumentById: the newest version."""
        _, stamps = _owned_with(actor_id, document_id, keys.document_versions(document_id), -1, -1, rev=rev)
        found = self._load_versions(document_id, stamps)
        if not found:
            raise NotFound("document")
        return found[0]

    @staticmethod
    def _load_versions(document_id: str, stamps: list[str]) -> list[dict[str, Any]]:
        if not stamps:
            return []
        pipe = pipeline()
        for stamp in stamps:
            pipe.hgetall(keys.document_version(document_id, int(stamp)))
        return [v for v in map(decode_version, pipe.execute()) if v]

    def list_for_user(self, user_id: str, page: PageRequest) -> tuple[list[dict[str, Any]], bool]:
        """The user's documents (latest title and kind), newest first."""
        pipe = pipeline()
        page.queue(pipe, keys.user_documents(user_id))
        found, ids, has_more = page.split(pipe.execute()[0])
        if not found:
            raise NotFound("document", "The cursor document was not found.")
        pipe = pipeline()
        for document_id in ids:
            pipe.hgetall(keys.document(document_id))
        docs = []
        for meta in pipe.execute():
            if meta.get("userId") == user_id:
                docs.append(
                    {
                        "id": meta["id"],
                        "title": meta.get("title", ""),
                        "kind": meta.get("kind", "text"),
                        "createdAt": int(meta.get("createdAt", 0)),
                        "updatedAt": int(meta.get("updatedAt", 0)),
                    }
                )
        return docs, has_more

    def delete_after(self, actor_id: str, document_id: str, timestamp: int) -> int:
        """deleteDocumentsByIdAfterTimestamp: versions and suggestions with createdAt > timestamp.

        Removing every version removes the document.
        """
        pipe = pipeline()
        pipe.hgetall(keys.document(document_id))
        pipe.zrangebyscore(keys.document_versions(document_id), f"({timestamp}", "+inf")
        pipe.zrangebyscore(keys.document_suggestions(document_id), f"({timestamp}", "+inf")
        pipe.zrevrangebyscore(keys.document_versions(document_id), timestamp, "-inf", start=0, num=1)
        meta, stamps, suggestion_ids, remaining = pipe.execute()
        _owned(meta, actor_id)
        if not stamps:
            return 0
        write = Write(frees_memory=True)
        if not remaining:
            write.step(lambda p: p.zrem(keys.user_documents(actor_id), document_id))
        self._stage_remove(write, document_id, stamps, suggestion_ids, whole=not remaining)
        if remaining:
            touch_document(write, document_id)
            write.step(
                lambda p: RESUMMARIZE(
                    keys=[
                        keys.document(document_id),
                        keys.document_versions(document_id),
                        keys.document_version(document_id, remaining[0]),
                    ],
                    args=[remaining[0]],
                    client=p,
                )
            )
            outbox.stage(write, "upsert", kind="document", userId=actor_id, documentId=document_id)
        else:
            outbox.stage(write, "delete_document", userId=actor_id, documentId=document_id)
        events.stage(write, actor_id, "document.versions_deleted", {"id": document_id, "after": timestamp})
        write.execute()
        return len(stamps)

    def delete(self, actor_id: str, document_id: str) -> None:
        self.delete_after(actor_id, document_id, -1)

    def delete_all_for_user(self, user_id: str) -> int:
        document_ids = get_redis().zrange(keys.user_documents(user_id), 0, -1)
        if not document_ids:
            return 0
        pipe = pipeline()
        for document_id in document_ids:
            pipe.zrange(keys.document_versions(document_id), 0, -1)
            pipe.zrange(keys.document_suggestions(document_id), 0, -1)
        replies = pipe.execute()
        write = Write(frees_memory=True)
        write.step(lambda p: p.delete(keys.user_documents(user_id)))
        for document_id, stamps, suggestion_ids in zip(document_ids, replies[::2], replies[1::2], strict=True):
            self._stage_remove(write, document_id, stamps, suggestion_ids, whole=True)
        write.execute()
        return len(document_ids)

    @staticmethod
    def _stage_remove(
        write: Write, document_id: str, stamps: list[str], suggestion_ids: list[str], whole: bool
    ) -> None:
        def remove(p: Any) -> None:
            if suggestion_ids:
                p.zrem(keys.document_suggestions(document_id), *suggestion_ids)
                p.unlink(*(keys.document_suggestion(document_id, s) for s in suggestion_ids))
            p.zrem(keys.document_versions(document_id), *stamps)
            p.unlink(*(keys.document_version(document_id, int(s)) for s in stamps))
            if whole:
                p.unlink(
                    keys.document(document_id),
                    keys.document_versions(document_id),
                    keys.document_suggestions(document_id),
                    keys.document_rev(document_id),
                )

        write.step(remove)

    # --- suggestions ---------------------------------------------------------------------------
    def save_suggestions(
        self, actor_id: str, document_id: str, suggestions: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """saveSuggestions: each tied to a version (default: the latest)."""
        meta, stamps = _owned_with(actor_id, document_id, keys.document_versions(document_id))
        known = {int(s) for s in stamps}
        now = now_us()
        saved = []
        for item in suggestions:
            version = item.get("documentCreatedAt") or int(meta["updatedAt"])
            if version not in known:
                raise NotFound("document", "documentCreatedAt names no version of this document.")
            saved.append(
                {
                    "id": item.get("id") or new_id(),
                    "documentId": document_id,
                    "documentCreatedAt": version,
                    "originalText": item["originalText"],
                    "suggestedText": item["suggestedText"],
                    "description": item.get("description") or None,
                    "isResolved": bool(item.get("isResolved", False)),
                    "userId": actor_id,
                    "createdAt": item.get("createdAt") or now,
                }
            )

        def store(p: Any) -> None:
            for s in saved:
                p.hset(keys.document_suggestion(document_id, s["id"]), mapping=Suggestion.build(s).encode())
            p.zadd(keys.document_suggestions(document_id), {s["id"]: s["documentCreatedAt"] for s in saved})

        write = Write()
        write.step(store)
        events.stage(
            write, actor_id, "suggestion.created", {"documentId": document_id, "ids": [s["id"] for s in saved]}
        )
        write.execute()
        return saved

    def suggestions(self, actor_id: str | None, document_id: str) -> list[dict[str, Any]]:
        """getSuggestionsByDocumentId: every version's suggestions."""
        _, ids = _owned_with(actor_id, document_id, keys.document_suggestions(document_id))
        if not ids:
            return []
        pipe = pipeline()
        for suggestion_id in ids:
            pipe.hgetall(keys.document_suggestion(document_id, suggestion_id))
        return [s for s in map(decode_suggestion, pipe.execute()) if s]


documents = DocumentManager()
