"""The operations page: Redis health, what the keyspace holds, apps' panels (the indexer...), the audit trail.

Like the raw key browser, this is the admin's own maintenance module and calls the Redis client
directly (INFO, CONFIG GET, SLOWLOG, SCAN, MEMORY USAGE): it looks at the server, not at any
concern's data, and builds no concern's key names. Counts come from the managers and from what
apps register (:mod:`storage.staff.registry`).

The keyspace analysis follows RedisInsight's "database analysis": SCAN this deployment's keys
(up to a limit, so it stays cheap on a big database), group them by namespace with the ids
replaced by ``*``, and sum their memory.

A managed Redis (Upstash, ElastiCache, Memorystore) may refuse SLOWLOG, MEMORY USAGE, CONFIG or
INFO sections: the page then shows what it could read and a note naming what was refused.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import redis
from django.http import HttpRequest, HttpResponse

from mookti.redis import get_redis, glob_escape, is_cluster
from storage.managers import inspection
from storage.managers.users import USER_TYPES
from storage.staff import audit, registry
from storage.staff.views.common import int_param, render, when
from storage.staff.views.keybrowser import prefix, text, view_url

INFO_FIELDS = {
    "Server": [("redis_version", "Version"), ("redis_mode", "Mode"), ("uptime_in_days", "Uptime (days)")],
    "Memory": [
        ("used_memory_human", "Used"),
        ("used_memory_peak_human", "Peak"),
        ("maxmemory_human", "Limit (0B = none)"),
        ("maxmemory_policy", "Eviction policy"),
        ("mem_fragmentation_ratio", "Fragmentation ratio"),
    ],
    "Clients": [("connected_clients", "Connected"), ("blocked_clients", "Blocked")],
    "Throughput": [
        ("instantaneous_ops_per_sec", "Ops/s"),
        ("total_commands_processed", "Commands processed"),
        ("keyspace_hits", "Keyspace hits"),
        ("keyspace_misses", "Keyspace misses"),
        ("expired_keys", "Expired keys"),
        ("evicted_keys", "Evicted keys"),
    ],
    "Persistence": [
        ("aof_enabled", "AOF enabled"),
        ("aof_last_write_status", "AOF last write"),
        ("rdb_last_bgsave_status", "Last RDB save"),
        ("rdb_changes_since_last_save", "Changes since last save"),
        ("loading", "Loading"),
    ],
}
DEFAULT_SCAN_LIMIT = 10_000
MAX_SCAN_LIMIT = 200_000
ID_LIKE = re.compile(r"^(\d+|(?=.*\d)[A-Za-z0-9_.\-]{8,}|[0-9a-f]{16,})$")
HASH_TAG = re.compile(r"\{[^}]*\}")


INFO_SECTIONS = ("server", "memory", "clients", "stats", "persistence", "keyspace")


class Notes(list[str]):
    """What the server refused, one sentence each, shown at the top of the page."""

    def refused(self, command: str, consequence: str, exc: redis.ResponseError) -> None:
        self.append(f"This Redis refuses {command} ({str(exc)[:120]}): {consequence}")


def _one_node(info: dict[str, Any]) -> dict[str, Any]:
    if is_cluster() and info and all(isinstance(v, dict) for v in info.values()):
        return next(iter(info.values()))  # one node's view; each node reports its own
    return info


def redis_info(notes: Notes) -> dict[str, Any]:
    """INFO, or section by section where plain INFO is refused (managed services allow some)."""
    try:
        return _one_node(get_redis().info())
    except redis.ResponseError:
        pass
    info: dict[str, Any] = {}
    refused: dict[str, redis.ResponseError] = {}
    for section in INFO_SECTIONS:
        try:
            info.update(_one_node(get_redis().info(section)))
        except redis.ResponseError as exc:
            refused[section] = exc
    if refused:
        notes.refused(f"INFO {', '.join(refused)}", "those figures show as “—”.", next(iter(refused.values())))
    return info


def info_sections(info: dict[str, Any]) -> list[tuple[str, list[tuple[str, Any]]]]:
    sections = [
        (title, [(label, info.get(name, "—")) for name, label in fields]) for title, fields in INFO_FIELDS.items()
    ]
    last_save = info.get("rdb_last_save_time")
    if last_save:
        sections[-1][1].append(("Last RDB save at", when(int(last_save) * 1_000_000)))
    return sections


def persistence_config(notes: Notes) -> dict[str, str]:
    """``save`` and ``appendfsync`` (managed Redis may refuse CONFIG: then they stay unknown)."""
    try:
        found = get_redis().config_get("save")
        found.update(get_redis().config_get("appendfsync"))
        return found
    except redis.ResponseError as exc:
        notes.refused("CONFIG GET", "the persistence schedule is unknown.", exc)
        return {}


def warnings_for(info: dict[str, Any], config: dict[str, str]) -> list[str]:
    found = []
    if str(info.get("aof_enabled", "0")) == "0" and config.get("save", "x") == "":
        found.append("Persistence is off (no AOF, no RDB snapshots): a restart loses every key.")
    if info.get("maxmemory_policy") not in (None, "noeviction"):
        found.append(
            f"maxmemory-policy is {info['maxmemory_policy']}: Redis may evict application data; use noeviction."
        )
    if info.get("rdb_last_bgsave_status") == "err" or info.get("aof_last_write_status") == "err":
        found.append("The last persistence write failed.")
    return found


def namespace(short_name: str) -> str:
    """``chat:{0192...}:message:0193...`` -> ``chat:{*}:message:*``."""
    shape = HASH_TAG.sub("{*}", short_name)
    return ":".join("*" if ID_LIKE.match(part) else part for part in shape.split(":"))


def analyse_keyspace(limit: int, notes: Notes) -> dict[str, Any]:
    """Count and size this deployment's keys by namespace, scanning at most ``limit`` keys."""
    client = get_redis(raw=True)
    groups: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"count": 0, "memory": 0})
    biggest: list[tuple[int, str, str]] = []
    scanned = 0
    batch: list[bytes] = []
    memory_refused: list[redis.ResponseError] = []

    def flush() -> None:
        pipe = client.pipeline(transaction=False)
        for name in batch:
            pipe.type(name)
            pipe.memory_usage(name, samples=0)
        replies = pipe.execute(raise_on_error=False)
        for index, name in enumerate(batch):
            kind, memory = replies[2 * index], replies[2 * index + 1]
            if isinstance(memory, redis.ResponseError) and not memory_refused:
                memory_refused.append(memory)
            memory = memory if isinstance(memory, int) else 0
            short = text(name)[len(prefix()) :]
            group = groups[(namespace(short), text(kind) if not isinstance(kind, Exception) else "?")]
            group["count"] += 1
            group["memory"] += memory
            biggest.append((memory, text(name), text(kind)))
        biggest.sort(reverse=True)
        del biggest[10:]
        batch.clear()

    for name in client.scan_iter(match=glob_escape(prefix()) + "*", count=1000):
        batch.append(name)
        scanned += 1
        if len(batch) >= 1000:
            flush()
        if scanned >= limit:
            break
    if batch:
        flush()
    if memory_refused:
        notes.refused("MEMORY USAGE", "key sizes show as 0 and the biggest keys are unknown.", memory_refused[0])
    rows = sorted(
        ({"namespace": ns, "type": kind, **numbers} for (ns, kind), numbers in groups.items()),
        key=lambda row: (-row["count"], row["namespace"]),
    )
    return {
        "rows": rows,
        "scanned": scanned,
        "complete": scanned < limit,
        "memory": sum(row["memory"] for row in rows),
        "biggest": []
        if memory_refused
        else [{"name": n, "short": n[len(prefix()) :], "type": k, "memory": m} for m, n, k in biggest],
    }


def exact_counts() -> list[tuple[str, int]]:
    """Counts the indexes know exactly: users (managers), what apps register, the audit trail."""
    users = inspection.user_totals()
    return [
        ("Users", users["all"]),
        *((f"Users ({t})", users[t]) for t in USER_TYPES),
        *registry.counts(),
        ("Audit entries", audit.size()),
    ]


def slowlog(notes: Notes) -> list[dict[str, Any]]:
    try:
        entries = get_redis().slowlog_get(10)
    except redis.ResponseError as exc:
        notes.refused("SLOWLOG", "the slow log is not shown.", exc)
        return []
    return [
        {
            "at": when(int(e.get("start_time", 0)) * 1_000_000),
            "duration_ms": int(e.get("duration", 0)) / 1000,
            "command": text(e.get("command", ""))[:200],
        }
        for e in entries
    ]


def operations(request: HttpRequest, site) -> HttpResponse:
    limit = int_param(request, "scan_limit", DEFAULT_SCAN_LIMIT, 100, MAX_SCAN_LIMIT)
    notes = Notes()
    info = redis_info(notes)
    config = persistence_config(notes)
    analysis = analyse_keyspace(limit, notes)
    for row in analysis["biggest"]:
        row["url"] = view_url(site, row["name"])
    slow = slowlog(notes)
    context = {
        "title": "Operations",
        "prefix": prefix(),
        "notes": notes,
        "sections": info_sections(info),
        "config": config,
        "warnings": warnings_for(info, config),
        "db_keys": info.get("db0", {}).get("keys") if isinstance(info.get("db0"), dict) else None,
        "counts": exact_counts(),
        "panels": [
            {"name": p.name, "template": p.template, "context": p.context()} for p in registry.operations_panels()
        ],
        "analysis": analysis,
        "scan_limit": limit,
        "audit": [{**entry, "at": when(entry.get("at"))} for entry in audit.recent(50)],
        "slowlog": slow,
    }
    return render(request, site, "admin/mookti/operations.html", context)
