"""Gamification state in exports (``storage.portability.sections`` finds this module by autodiscovery).

A learner's state is many small keys in their own slot (streak, streak days, goals, daily
stats, totals, weekly XP, achievements, activity ids, learning progress), so the export
carries each as a typed record: the ``gamification.keys`` function that names it and its
arguments (never a key string), its type, value and expiry. Weekly leaderboard entries are
the global index over the learner's weekly XP and travel as their own records. An import
writes a key only if it does not exist yet (an existing one is ``exists`` or ``exists with
other data (kept)``), and only for the key functions listed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gamification import keys
from gamification.days import week_start
from gamification.managers import engine
from gamification.managers.summary import user_keys
from mookti.ids import is_valid_id, to_us
from mookti.redis import Write, current_prefix, pipeline
from storage.portability.imports import CHANGED, EXISTS, WRITTEN, Planned
from storage.portability.sections import Emit, RecordType, Section, key_values, memberships, register, ts_in, ts_out

DAY = r"\d{4}-\d{2}-\d{2}"
WEEK = re.compile(r"^\d{4}-W\d{2}$")
WEEK_US = 7 * 24 * 3600 * 1_000_000
ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}"

# key function -> the patterns of its arguments after the user id
KEY_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "streak": (),
    "streak_days": (),
    "goals": (),
    "goals_completed": (),
    "goal": (ID,),
    "stats": (DAY,),
    "totals": (),
    "weekly_xp": (),
    "achievements": (),
    "activity_ids": (),
    "progress": (ID,),
    "progress_paths": (),
    "progress_awarded": (ID,),
}
WRITERS: dict[str, Callable[[Any, str, Any], None]] = {
    "hash": lambda p, k, v: p.hset(k, mapping=v),
    "zset": lambda p, k, v: p.zadd(k, {m: s for m, s in v}),
    "set": lambda p, k, v: p.sadd(k, *v),
    "string": lambda p, k, v: p.set(k, v),
}


def _shapes(user_id: str) -> list[tuple[str, re.Pattern[str]]]:
    """A regex per key function for this user (placeholders become groups)."""
    shapes = []
    for name, groups in KEY_FUNCTIONS.items():
        marks = [f"\x00{n}\x00" for n in range(len(groups))]
        pattern = re.escape(getattr(keys, name)(user_id, *marks))
        for mark, group in zip(marks, groups, strict=True):
            pattern = pattern.replace(re.escape(mark), f"({group})")
        shapes.append((name, re.compile(pattern)))
    return shapes


def _name_of(key: str, shapes: list[tuple[str, re.Pattern[str]]]) -> tuple[str, list[str]] | None:
    for name, pattern in shapes:
        match = pattern.fullmatch(key)
        if match:
            return name, list(match.groups())
    return None


def export_user(user_id: str, emit: Emit) -> None:
    own, weeks = user_keys(user_id)
    shapes = _shapes(user_id)
    found = key_values(own)
    prefix = current_prefix()
    names = [k for k in own if k.removeprefix(prefix) in found]
    pipe = pipeline()
    for key in names:
        pipe.pexpiretime(key)
    for week in weeks:
        pipe.zscore(keys.leaderboard(week), user_id)
    replies = pipe.execute()
    for key, expire in zip(names, replies, strict=False):
        entry = found[key.removeprefix(prefix)]
        named = _name_of(key, shapes)
        if named is None or entry["type"] not in WRITERS:
            continue
        value = [list(pair) for pair in entry["value"]] if entry["type"] == "zset" else entry["value"]
        record = {"userId": user_id, "key": named[0], "args": named[1], "type": entry["type"], "value": value}
        emit("keys", {**record, "expireAt": expire if expire and expire > 0 else None})
    for week, score in zip(weeks, replies[len(names) :], strict=True):
        if score is not None:
            reached = ts_out(engine.board_reached_at(score, week))
            emit("leaderboard", {"userId": user_id, "week": week, "xp": engine.board_xp(score), "reachedAt": reached})


def _key_item(record: dict[str, Any]) -> dict[str, Any]:
    if not is_valid_id(record["userId"]):
        raise ValueError(f"invalid userId {record['userId']!r}")
    groups = KEY_FUNCTIONS.get(record["key"])
    args = record.get("args") or []
    if (
        groups is None
        or len(args) != len(groups)
        or not all(re.fullmatch(g, str(a)) for g, a in zip(groups, args, strict=True))
    ):
        raise ValueError(f"unknown gamification key {record['key']!r} {args!r}")
    if record["type"] not in WRITERS:
        raise ValueError(f"unsupported type {record['type']!r}")
    value = record["value"]
    if record["type"] == "zset":
        value = [(str(m), float(s)) for m, s in value]
    return {
        "userId": record["userId"],
        "key": getattr(keys, record["key"])(record["userId"], *args),
        "type": record["type"],
        "value": value,
        "expireAt": record.get("expireAt"),
    }


def _owners_exist(user_ids: list[str], planned: Planned | None) -> dict[str, bool]:
    from storage.managers.users import users

    found = users.get_many(user_ids)
    return {u: bool(f) or bool(planned and u in planned.users) for u, f in zip(user_ids, found, strict=True)}


def import_keys(items: list[dict[str, Any]], *, dry_run: bool = False, planned: Planned | None = None) -> list[str]:
    owners = _owners_exist(list(dict.fromkeys(i["userId"] for i in items)), planned)
    current = key_values([i["key"] for i in items])
    prefix = current_prefix()
    outcomes = []
    write = Write()
    for item in items:
        existing = current.get(item["key"].removeprefix(prefix))
        if existing is not None:
            value = sorted(item["value"]) if item["type"] == "set" else item["value"]
            same = existing["type"] == item["type"] and existing["value"] == value
            outcomes.append(EXISTS if same else CHANGED)
        elif not owners[item["userId"]]:
            outcomes.append(f"owner not imported: {item['userId']}")
        else:
            outcomes.append(WRITTEN)

            def store(p: Any, i: dict[str, Any] = item) -> None:
                WRITERS[i["type"]](p, i["key"], i["value"])
                if i["expireAt"]:
                    p.pexpireat(i["key"], int(i["expireAt"]))

            write.step(store)
    if write and not dry_run:
        write.execute()
    return outcomes


def import_leaderboard(
    items: list[dict[str, Any]], *, dry_run: bool = False, planned: Planned | None = None
) -> list[str]:
    owners = _owners_exist(list(dict.fromkeys(i["userId"] for i in items)), planned)
    scores = pipeline()
    for item in items:
        scores.zscore(keys.leaderboard(item["week"]), item["userId"])
    outcomes = []
    write = Write()
    for item, score in zip(items, scores.execute(), strict=True):
        if score is not None:
            outcomes.append(EXISTS if engine.board_xp(score) == item["xp"] else CHANGED)
        elif not owners[item["userId"]]:
            outcomes.append(f"owner not imported: {item['userId']}")
        else:
            outcomes.append(WRITTEN)
            score = engine.board_score(item["xp"], item["week"], item["reachedAt"])
            write.step(lambda p, i=item, s=score: p.zadd(keys.leaderboard(i["week"]), {i["userId"]: s}))
    if write and not dry_run:
        write.execute()
    return outcomes


def _leaderboard_item(record: dict[str, Any]) -> dict[str, Any]:
    if not is_valid_id(record["userId"]) or not WEEK.match(str(record["week"])):
        raise ValueError("invalid userId or week")
    if not isinstance(record["xp"], int):
        raise ValueError(f"invalid xp {record['xp']!r}")
    # exports before ties were ranked have no reachedAt: the end of the week (last among equals)
    reached = ts_in(record["reachedAt"]) if record.get("reachedAt") else to_us(week_start(record["week"])) + WEEK_US
    return {"userId": record["userId"], "week": record["week"], "xp": record["xp"], "reachedAt": reached}


def snapshot_user(user_id: str) -> dict[str, Any]:
    own, weeks = user_keys(user_id)
    found = key_values(own)
    found.update(memberships([keys.leaderboard(w) for w in weeks], user_id))
    return found


register(
    Section(
        name="gamification",
        version=1,
        record_types=[
            RecordType("keys", _key_item, import_keys, lambda r: f"{r['userId']}/{r['key']}{r.get('args') or ''}"),
            RecordType("leaderboard", _leaderboard_item, import_leaderboard, lambda r: f"{r['userId']}/{r['week']}"),
        ],
        export_user=export_user,
        snapshot_user=snapshot_user,
    )
)
