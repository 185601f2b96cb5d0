"""The outbox consumer: keeps the vector store in step with Redis.

Writes append entries to the ``outbox:index`` stream in the same MULTI/EXEC as the change
(:mod:`mookti.outbox`). Any number of :class:`Indexer` processes read it as one consumer group:

- **Batches**: up to ``BATCH_SIZE`` (256) entries, waiting at most ``BATCH_WAIT_MS`` (200 ms) for a
  batch to fill once the first entry is there; all texts of a batch go to the embedding backend in
  one call, which sorts them by length and runs the model in batches of 64.
- **State, not events**: an entry only names a subject; :mod:`storage.search.indexing` reads its current
  state and makes the store match, so an old upsert handled after a delete deletes.
- **Order across processes**: a process indexes a user's data only while holding that user's
  lease (``SET NX PX``); entries of a user leased elsewhere wait, so two processes never write
  the same user's records from different snapshots (a delete is never overtaken by an older upsert).
- **Failures**: an outage (embedding service or vector store down, 429, 5xx, Redis) pauses the
  indexer with exponential backoff and retries the batch without counting it against the entries.
  Any other error retries the batch's entries one by one (finding the bad one) with exponential
  backoff; an entry that failed ``MAX_ATTEMPTS`` times moves to ``outbox:index:dead`` with its error.
- **Crashes**: entries a dead consumer left pending are taken over with XAUTOCLAIM after
  ``CLAIM_IDLE_MS``; an entry taken over ``MAX_CLAIMS`` times (it keeps killing its consumer)
  becomes a dead letter too.
- **Upkeep**: acked entries are trimmed from the stream; the store is compacted and its ANN
  indexes refreshed (:meth:`VectorStore.maintain`) every ``MAINTAIN_SECONDS`` in a background thread.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from mookti import outbox
from mookti.backends import BackendError, BackendUnavailable, IndexMismatch
from mookti.ids import now_us
from mookti.redis import REDIS_ERRORS, Write, get_redis, pipeline, register_script
from storage.managers import snapshots
from storage.search import keys as search_keys
from storage.search import kinds
from storage.search.embeddings import Embeddings, get_embeddings
from storage.search.indexing import Subject, subjects_of_entry, sync, user_subjects
from storage.search.vectors import VectorStore, check_index, get_vector_store, learning_namespaces, user_namespace

logger = logging.getLogger(__name__)

GROUP = "indexer"
DEFAULTS: dict[str, Any] = {
    # entries per batch; the embedding backend splits them into model batches (64 for the local
    # model) after sorting by length, so a bigger read wastes less on padding (bench/search.py)
    "BATCH_SIZE": 256,
    "BATCH_WAIT_MS": 200,
    # An idle indexer sends 60_000 / BLOCK_MS reads a minute, plus a claim every CLAIM_EVERY_SECONDS
    # and an index check every CHECK_INDEX_SECONDS: 5 commands a minute (bench/idle.py). A graceful
    # stop may wait for the read in progress (serve waits 20 s).
    "BLOCK_MS": 15_000,
    "MAX_ATTEMPTS": 5,
    "MAX_CLAIMS": 10,
    "RETRY_BASE_SECONDS": 1.0,
    "RETRY_MAX_SECONDS": 300.0,
    "OUTAGE_BASE_SECONDS": 0.5,
    "OUTAGE_MAX_SECONDS": 30.0,
    "CLAIM_IDLE_MS": 60_000,
    "CLAIM_EVERY_SECONDS": 120.0,
    "LEASE_MS": 60_000,
    "MAINTAIN_SECONDS": 30.0,
    "CHECK_INDEX_SECONDS": 120.0,
    "DEAD_MAXLEN": 10_000,
    "HEALTH_MAX_BACKLOG": 10_000,
}

# KEYS[1] lease; ARGV[1] owner, ARGV[2] ms. Extends the lease only while we hold it.
REFRESH_LEASE = register_script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
)
# KEYS[1] lease; ARGV[1] owner. Releases the lease only if we hold it.
RELEASE_LEASE = register_script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)


def indexer_options() -> dict[str, Any]:
    return {**DEFAULTS, **(getattr(settings, "MOOKTI_INDEXER", None) or {})}


@dataclass
class Entry:
    id: str
    fields: dict[str, str]
    due: float = 0.0

    @property
    def user_id(self) -> str:
        return self.fields.get("userId", "")


class Indexer:
    """One consumer of the outbox group. ``run_once``/``drain`` for tests, ``run_forever`` for the command."""

    def __init__(
        self,
        consumer: str | None = None,
        *,
        embeddings: Embeddings | None = None,
        store: VectorStore | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.options = {**indexer_options(), **(options or {})}
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.embeddings = embeddings or get_embeddings()
        self.store = store or get_vector_store()
        self.client = get_redis()
        # the blocking reads wait up to BLOCK_MS, longer than the usual client's reply timeout
        self.reader = get_redis(read_timeout=self.options["BLOCK_MS"] / 1000 + 10)
        self.stream = outbox.stream()
        self._retry: dict[str, Entry] = {}
        self._outage_until = 0.0
        self._outage_delay = 0.0
        self._after_outage = False  # set by an outage: re-read what the group delivered to us
        self._last_claim = 0.0
        self._last_check = time.monotonic()
        self._last_maintain = time.monotonic()
        self._dirty: set[str] = set()
        self._handled_since_maintain = True  # the first upkeep trims what earlier runs left
        self._maintenance: threading.Thread | None = None
        self.stats: dict[str, float] = {
            "entries": 0,
            "upserted": 0,
            "deleted": 0,
            "dead": 0,
            "outages": 0,
            "embed_seconds": 0.0,  # time spent embedding (the rest is Redis, the store, waiting)
        }

    # --- setup --------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the group if needed, check the index was built with this model, and take back
        what this consumer name left pending (a restart with ``--consumer`` resumes at once)."""
        ensure_group(self.client)
        check_index(self.embeddings, self.store, claim=True)
        self._take_back_pending()

    def _take_back_pending(self) -> None:
        """Schedule every entry the group has delivered to this consumer and not seen acked: at
        start, and after an outage (a read whose reply was lost still delivered its entries)."""
        start = "0-0"
        while True:
            reply = self.client.xreadgroup(GROUP, self.consumer, {self.stream: start}, count=1000)
            items = [(entry_id, fields) for _, batch in reply or [] for entry_id, fields in batch]
            if not items:
                return
            for entry_id, fields in items:
                if fields and entry_id not in self._retry:
                    self._retry[entry_id] = Entry(entry_id, fields)
            start = items[-1][0]

    # --- the loop -----------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, on_batch: Callable[[int], None] | None = None) -> None:
        while not stop.is_set():  # Redis may be down at start too: wait for it
            try:
                self.start()
                break
            except redis.RedisError as exc:
                self._outage([], exc)
                stop.wait(self._outage_until - time.monotonic())
        self.embeddings.warm_up()
        while not stop.is_set():
            if self._outage_until > time.monotonic():
                stop.wait(self._outage_until - time.monotonic())
                continue
            handled = self.run_once()
            if on_batch and handled:
                on_batch(handled)
            if not handled and self._retry:
                stop.wait(min(1.0, max(0.0, min(e.due for e in self._retry.values()) - time.monotonic())))
        self.hand_back()
        # a compaction still running in the daemon thread may be cut short: LanceDB commits atomically

    def hand_back(self) -> None:
        """On a graceful stop: mark the entries still held for a retry as idle for ``CLAIM_IDLE_MS``,
        so another consumer takes them over at its next claim instead of a full idle period later
        (a restarted process usually gets a new consumer name and would never resume them itself)."""
        if not self._retry:
            return
        ids, self._retry = list(self._retry), {}
        try:
            idle = self.options["CLAIM_IDLE_MS"]
            self.client.xclaim(self.stream, GROUP, self.consumer, 0, ids, idle=idle, justid=True)
        except redis.RedisError as exc:
            logger.warning("could not hand back %d outbox entries (taken over after CLAIM_IDLE_MS): %s", len(ids), exc)

    def run_once(self, block_ms: int | None = None) -> int:
        """Handle one batch (retries due first, then new entries); returns how many entries were handled."""
        now = time.monotonic()
        if self._outage_until > now:
            return 0
        batch: list[Entry] = []
        try:
            if now - self._last_check >= self.options["CHECK_INDEX_SECONDS"]:
                # a reindex for another model may have happened meanwhile: stop rather than mix models
                check_index(self.embeddings, self.store)
                self._last_check = now
            if self._after_outage:  # a read whose reply the outage lost still delivered its entries
                self._take_back_pending()
                self._after_outage = False
            if now - self._last_claim >= self.options["CLAIM_EVERY_SECONDS"]:
                self._last_claim = now
                self._touch_retries()
                batch.extend(self._claim_abandoned())
            due = sorted((e for e in self._retry.values() if e.due <= now), key=lambda e: e.id)
            batch.extend(due[: max(0, self.options["BATCH_SIZE"] - len(batch))])
            for entry in batch:
                self._retry.pop(entry.id, None)
            wanted = self.options["BATCH_SIZE"] - len(batch)
            if wanted > 0:
                block = self.options["BLOCK_MS"] if block_ms is None else block_ms
                batch.extend(self._read_new(wanted, block if not batch else 0))
        except redis.RedisError as exc:
            self._outage(batch, exc)
            return 0
        if not batch and not self._retry:
            self._recovered()
        if batch:
            self._handle(batch)
            self._handled_since_maintain = True
        self._maybe_maintain()
        return len(batch)

    def drain(self, timeout: float = 60.0, maintain: bool = True) -> bool:
        """Run until every entry is handled or dead (True), or ``timeout`` passes (False). For tests."""
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._outage_until > time.monotonic():
                time.sleep(min(0.05, self._outage_until - time.monotonic()))
                continue
            handled = self.run_once(block_ms=0)
            if handled:
                continue
            if self._retry:
                time.sleep(0.02)
                continue
            if self._backlog() == 0:
                if maintain:
                    self.maintain_now()
                return True
            time.sleep(0.02)
        return False

    # --- reading ------------------------------------------------------------------------------
    def _read_new(self, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` new entries: block for the first, then gather for ``BATCH_WAIT_MS`` at most."""
        entries = self._xreadgroup(count, block_ms)
        if not entries:
            return []
        deadline = time.monotonic() + self.options["BATCH_WAIT_MS"] / 1000
        while len(entries) < count:
            remaining = int((deadline - time.monotonic()) * 1000)
            if remaining <= 0:
                break
            more = self._xreadgroup(count - len(entries), remaining)
            if not more:
                break
            entries.extend(more)
        return entries

    def _xreadgroup(self, count: int, block_ms: int) -> list[Entry]:
        reply = self.reader.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms if block_ms > 0 else None
        )
        return [Entry(entry_id, fields) for _, items in reply or [] for entry_id, fields in items if fields]

    def _claim_abandoned(self) -> list[Entry]:
        """Take over entries a crashed consumer left pending; count the take-overs."""
        claimed: list[Entry] = []
        start = "0-0"
        while len(claimed) < self.options["BATCH_SIZE"]:
            reply = self.client.xautoclaim(
                self.stream,
                GROUP,
                self.consumer,
                min_idle_time=self.options["CLAIM_IDLE_MS"],
                start_id=start,
                count=self.options["BATCH_SIZE"] - len(claimed),
            )
            start, items = reply[0], reply[1]
            claimed.extend(Entry(entry_id, fields) for entry_id, fields in items if fields)
            if start == "0-0" or not items:
                break
        if not claimed:
            return []
        pipe = pipeline()
        for entry in claimed:
            pipe.hincrby(search_keys.outbox_attempts(), f"{entry.id}:claims", 1)
        counts = pipe.execute()
        usable = []
        for entry, claims in zip(claimed, counts, strict=True):
            if claims > self.options["MAX_CLAIMS"]:
                self._dead(entry, f"taken over from crashed consumers {claims - 1} times", claims - 1)
            else:
                usable.append(entry)
        logger.info("took over %d entries from stopped consumers", len(claimed))
        return usable

    def _touch_retries(self) -> None:
        """Reset the idle time of entries we hold for retry, so no other consumer takes them over."""
        if self._retry:
            self.client.xclaim(self.stream, GROUP, self.consumer, 0, list(self._retry), justid=True)

    # --- handling -----------------------------------------------------------------------------
    def _handle(self, batch: list[Entry]) -> None:
        valid: list[tuple[Entry, list[Subject]]] = []
        for entry in batch:
            try:
                valid.append((entry, subjects_of_entry(entry.fields)))
            except ValueError as exc:
                self._dead(entry, f"malformed entry: {exc}", 1)
        if not valid:
            return
        try:
            self._index(valid)
        except (BackendUnavailable, redis.RedisError) as exc:
            self._outage([entry for entry, _ in valid], exc)
        except IndexMismatch:
            raise
        except Exception as exc:
            if len(valid) > 1:  # find the entry that fails
                for entry, subjects in valid:
                    try:
                        self._index([(entry, subjects)])
                    except (BackendUnavailable, redis.RedisError) as outage:
                        self._outage([entry], outage)
                    except Exception as single:
                        self._failed(entry, single)
            else:
                self._failed(valid[0][0], exc)

    def _index(self, valid: list[tuple[Entry, list[Subject]]]) -> None:
        by_user: dict[str, list[tuple[Entry, list[Subject]]]] = defaultdict(list)
        for entry, subjects in valid:
            by_user[entry.user_id].append((entry, subjects))
        leased = self._acquire(list(by_user))
        for user_id in by_user:
            if user_id not in leased:  # another consumer is indexing this user: try again shortly
                for entry, _ in by_user[user_id]:
                    self._schedule(entry, 0.2)
        if not leased:
            return
        try:
            subjects = {user: [s for _, subs in by_user[user] for s in subs] for user in leased}
            with self._keeping(leased):
                counts = sync(self.embeddings, self.store, subjects, before_write=lambda: self._confirm(leased))
            done = [entry for user in leased for entry, _ in by_user[user]]
            self._ack(done)
            self._dirty.update(user_namespace(user) for user in leased)
            self.stats["entries"] += len(done)
            self.stats["upserted"] += counts["upserted"]
            self.stats["embed_seconds"] += counts["embed_seconds"]
            self.stats["deleted"] += counts["deleted"]
            self._recovered()
        finally:
            self._release(leased)

    def _acquire(self, users: list[str]) -> list[str]:
        pipe = pipeline()
        for user in users:
            pipe.set(search_keys.index_lease(user), self.consumer, nx=True, px=self.options["LEASE_MS"])
            pipe.get(search_keys.index_lease(user))
        replies = pipe.execute()
        return [user for user, owner in zip(users, replies[1::2], strict=True) if owner == self.consumer]

    def _refresh(self, users: list[str]) -> bool:
        """Extend every lease we still hold; False if one was lost."""
        pipe = pipeline()
        for user in users:
            REFRESH_LEASE(
                keys=[search_keys.index_lease(user)], args=[self.consumer, self.options["LEASE_MS"]], client=pipe
            )
        return all(pipe.execute())

    def _confirm(self, users: list[str]) -> None:
        """Right before writing: still holding every lease (extended)? Else retry later."""
        if not self._refresh(users):
            raise BackendUnavailable("an indexing lease expired during the batch")

    @contextmanager
    def _keeping(self, users: list[str]) -> Iterator[None]:
        """Renew the leases every third of their time while a batch embeds: a model slower than the
        lease (a big batch on a busy host) must not lose them and redo the same batch forever."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.options["LEASE_MS"] / 3000):
                with suppress(*REDIS_ERRORS):  # a lost lease shows in _confirm
                    self._refresh(users)

        keeper = threading.Thread(
            target=contextvars.copy_context().run, args=(renew,), name="lease-keeper", daemon=True
        )
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()

    def _release(self, users: list[str]) -> None:
        try:
            pipe = pipeline()
            for user in users:
                RELEASE_LEASE(keys=[search_keys.index_lease(user)], args=[self.consumer], client=pipe)
            pipe.execute()
        except redis.RedisError:
            pass  # the leases expire on their own

    def _ack(self, entries: list[Entry]) -> None:
        ids = [entry.id for entry in entries]
        pipe = pipeline()
        pipe.xack(self.stream, GROUP, *ids)
        pipe.hdel(search_keys.outbox_attempts(), *ids, *(f"{i}:claims" for i in ids))
        pipe.execute()

    def _schedule(self, entry: Entry, delay: float) -> None:
        entry.due = time.monotonic() + delay
        self._retry[entry.id] = entry

    def _outage(self, entries: list[Entry], exc: Exception) -> None:
        """Pause everything with exponential backoff; the entries are retried after it, not counted."""
        base, cap = self.options["OUTAGE_BASE_SECONDS"], self.options["OUTAGE_MAX_SECONDS"]
        if not self._outage_delay:  # logged once per outage, not per retry
            logger.warning("indexing paused, retrying with backoff (up to %.0fs): %s", cap, exc)
        self._outage_delay = min(cap, self._outage_delay * 2 if self._outage_delay else base)
        self._outage_until = time.monotonic() + self._outage_delay
        self._after_outage = True
        self.stats["outages"] += 1
        for entry in entries:
            self._schedule(entry, self._outage_delay)

    def _recovered(self) -> None:
        if self._outage_delay:
            self._outage_delay = 0.0
            logger.warning("indexing resumed")

    def _failed(self, entry: Entry, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        try:
            attempts = int(self.client.hincrby(search_keys.outbox_attempts(), entry.id, 1))
        except redis.RedisError:
            self._schedule(entry, self.options["RETRY_BASE_SECONDS"])
            return
        if attempts >= self.options["MAX_ATTEMPTS"]:
            self._dead(entry, error, attempts)
            return
        delay = min(self.options["RETRY_MAX_SECONDS"], self.options["RETRY_BASE_SECONDS"] * 2 ** (attempts - 1))
        logger.warning("outbox entry %s failed (attempt %d), retrying in %.1fs: %s", entry.id, attempts, delay, error)
        self._schedule(entry, delay)

    def _dead(self, entry: Entry, error: str, attempts: int) -> None:
        """Park the entry in the dead-letter stream with its error, then ack it."""
        fields = {
            **entry.fields,
            "entryId": entry.id,
            "error": error[:2000],
            "attempts": str(attempts),
            "failedAt": str(now_us()),
        }
        write = Write()
        write.step(
            lambda p: p.xadd(search_keys.outbox_dead(), fields, maxlen=self.options["DEAD_MAXLEN"], approximate=True)
        )
        write.step(lambda p: p.xack(self.stream, GROUP, entry.id))
        write.step(lambda p: p.hdel(search_keys.outbox_attempts(), entry.id, f"{entry.id}:claims"))
        write.execute()
        self.stats["dead"] += 1
        logger.error("outbox entry %s moved to the dead letters after %d attempts: %s", entry.id, attempts, error)

    # --- upkeep -------------------------------------------------------------------------------
    def _backlog(self) -> int:
        metrics = index_metrics()
        return metrics["lag"] + metrics["pending"]

    def _maybe_maintain(self) -> None:
        if time.monotonic() - self._last_maintain < self.options["MAINTAIN_SECONDS"]:
            return
        if not self._handled_since_maintain and not self._dirty:
            return  # idle: nothing to trim or compact, no Redis command
        self._handled_since_maintain = False
        if self._maintenance is not None and self._maintenance.is_alive():
            return
        self._last_maintain = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        self._maintenance = threading.Thread(target=self._maintain, args=(dirty,), name="index-maintenance")
        self._maintenance.daemon = True
        self._maintenance.start()

    def maintain_now(self) -> None:
        self.wait_for_maintenance()
        dirty, self._dirty = self._dirty, set()
        self._maintain(dirty)

    def wait_for_maintenance(self) -> None:
        if self._maintenance is not None:
            self._maintenance.join()

    def _maintain(self, dirty: set[str]) -> None:
        try:
            trim_outbox(self.client)
            if dirty:
                self.store.maintain(sorted(dirty))
        except Exception as exc:
            self._dirty.update(dirty)  # try again next time
            logger.warning("index maintenance failed: %s", exc)


# --- group, metrics, dead letters (the admin and the health check use these) --------------------
def ensure_group(client: Any = None) -> None:
    client = client or get_redis()
    try:
        client.xgroup_create(outbox.stream(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _group_info(client: Any) -> dict[str, Any] | None:
    try:
        groups = client.xinfo_groups(outbox.stream())
    except redis.ResponseError:  # no stream yet
        return None
    return next((g for g in groups if g.get("name") == GROUP), None)


def index_metrics() -> dict[str, Any]:
    """Lag (entries not yet read by any indexer), pending (read, not acked), dead letters, consumers."""
    client = get_redis()
    pipe = pipeline()
    pipe.xlen(outbox.stream())
    pipe.xlen(search_keys.outbox_dead())
    length, dead = pipe.execute()
    group = _group_info(client)
    if group is None:
        return {"lag": length, "pending": 0, "dead": dead, "consumers": 0, "oldestPendingSeconds": 0}
    lag = group.get("lag")
    if lag is None:  # Redis cannot tell after some deletions: count what follows the last delivered id
        lag = len(client.xrange(outbox.stream(), f"({group['last-delivered-id']}", "+", count=100_000))
    oldest = 0.0
    if group.get("pending"):
        summary = client.xpending(outbox.stream(), GROUP)
        first = summary.get("min")
        if first:
            oldest = max(0.0, time.time() - int(first.split("-")[0]) / 1000)
    return {
        "lag": int(lag),
        "pending": int(group.get("pending", 0)),
        "dead": dead,
        "consumers": _live_consumers(client) if group.get("consumers") else 0,
        "oldestPendingSeconds": round(oldest, 1),
    }


def _live_consumers(client: Any) -> int:
    """Consumers that read within ``CLAIM_IDLE_MS`` (a stopped indexer's name lingers in the group)."""
    idle_limit = indexer_options()["CLAIM_IDLE_MS"]
    consumers = client.xinfo_consumers(outbox.stream(), GROUP)
    return sum(1 for consumer in consumers if int(consumer.get("idle", 0)) < idle_limit)


def trim_outbox(client: Any = None) -> None:
    """Drop entries every consumer is done with (before the oldest pending and last delivered ids)."""
    client = client or get_redis()
    group = _group_info(client)
    if group is None:
        return
    floor = group["last-delivered-id"]
    if group.get("pending"):
        first = client.xpending(outbox.stream(), GROUP).get("min")
        if first and _id_key(first) < _id_key(floor):
            floor = first
    if floor and floor != "0-0":
        client.xtrim(outbox.stream(), minid=floor, approximate=True)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def dead_letters(count: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters: ``{"id", "fields"}`` with the original entry, its error and attempts."""
    return [{"id": i, "fields": f} for i, f in get_redis().xrevrange(search_keys.outbox_dead(), count=count)]


def retry_dead_letters(ids: list[str] | None = None) -> int:
    """Put dead letters (all, or these ids) back on the outbox; returns how many."""
    client = get_redis()
    items = (
        [(i, f) for i in ids for i, f in client.xrange(search_keys.outbox_dead(), i, i)]
        if ids is not None
        else client.xrange(search_keys.outbox_dead())
    )
    retried = 0
    for dead_id, fields in items:
        original = {k: v for k, v in fields.items() if k not in ("entryId", "error", "attempts", "failedAt")}
        write = Write()
        write.step(lambda p, o=original: p.xadd(outbox.stream(), o))
        write.step(lambda p, d=dead_id: p.xdel(search_keys.outbox_dead(), d))
        write.execute()
        retried += 1
    return retried


def indexer_health() -> dict[str, Any]:
    metrics = index_metrics()
    backlog = metrics["lag"] + metrics["pending"]
    return {**metrics, "ok": metrics["dead"] == 0 and backlog < indexer_options()["HEALTH_MAX_BACKLOG"]}


def vector_store_health() -> dict[str, Any]:
    try:
        return get_vector_store().ping()
    except BackendError as exc:
        return {"ok": False, "error": str(exc)[:300]}


# --- rebuild ------------------------------------------------------------------------------------
def wait_for_lease(user_id: str, owner: str, lease_ms: int, timeout: float = 300.0) -> None:
    client = get_redis()
    deadline = time.monotonic() + timeout
    while not client.set(search_keys.index_lease(user_id), owner, nx=True, px=lease_ms):
        if time.monotonic() > deadline:
            raise TimeoutError(f"user {user_id} is being indexed by {client.get(search_keys.index_lease(user_id))}")
        time.sleep(0.2)


def rebuild_user(
    user_id: str,
    embeddings: Embeddings | None = None,
    store: VectorStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-embed all of a user's searchable items from Redis (under the user's lease)."""
    embeddings = embeddings or get_embeddings()
    store = store or get_vector_store()
    owner = f"reindex-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    lease_ms = indexer_options()["LEASE_MS"]
    batch_size = indexer_options()["BATCH_SIZE"]
    wait_for_lease(user_id, owner, lease_ms)
    done = 0
    try:
        store.delete_namespace(user_namespace(user_id))
        for group in user_subjects(user_id):
            for start in range(0, len(group), batch_size):
                REFRESH_LEASE(keys=[search_keys.index_lease(user_id)], args=[owner, lease_ms])
                part = group[start : start + batch_size]
                sync(embeddings, store, {user_id: part})
                items = sum(1 for subject in part if kinds.is_item(subject))
                done += items
                if progress:
                    progress(items)
    finally:
        RELEASE_LEASE(keys=[search_keys.index_lease(user_id)], args=[owner])
    return done


def all_user_ids() -> list[str]:
    return snapshots.all_user_ids()


def clear_store(store: VectorStore) -> int:
    """Drop every namespace except the shared learning content (a model change makes them useless)."""
    keep = set(learning_namespaces())
    names = [n for n in store.stats()["namespaces"] if n not in keep]
    for name in names:
        store.delete_namespace(name)
    return len(names)


def register_health_checks() -> None:
    from mookti import health

    health.register("indexer", indexer_health)
    health.register("vector_store", vector_store_health)
