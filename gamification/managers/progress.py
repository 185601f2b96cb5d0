"""Learning progress per path and module: ``user:{uid}:progress:{pathId}``.

``put`` replaces a path's state; ``sync`` merges an offline client's state without losing
either side: completed nodes are the union, time spent the maximum, the current node the one
of the newer side (the client's ``updatedAt`` against the last one stored). Both compute the
new state in Python and save it with a version check (retried on a concurrent change); nodes
completed for the first time on a path count as learning items (activity, XP, streak), once
each, and added time spent counts toward the day's minutes.
"""

from __future__ import annotations

import json
from typing import Any

from gamification import keys, lua
from gamification.days import iso_week
from gamification.managers import engine
from mookti.errors import Conflict, NotFound
from mookti.ids import iso, now_us
from mookti.redis import get_redis, pipeline


def _percent(done: int, total: int | None) -> int | None:
    if not total:
        return None
    return min(100, done * 100 // total)


SUMMARY_FIELDS = (
    "pathId",
    "currentModule",
    "currentNode",
    "percent",
    "completedCount",
    "totalNodes",
    "timeSpentSeconds",
    "updatedAt",
)


def progress_summary_json(progress: dict[str, Any]) -> dict[str, Any]:
    """A path's progress without its modules, in the API's JSON shape (its events; the REST views'
    ``ProgressSummaryOut`` gives the same, a test keeps them equal)."""
    return {**{name: progress[name] for name in SUMMARY_FIELDS}, "updatedAt": iso(progress["updatedAt"])}


def decode_progress(raw: dict[str, str]) -> dict[str, Any] | None:
    """The stored state plus derived counts and percentages (per module and for the path)."""
    if not raw or "pathId" not in raw:
        return None
    modules = []
    for module in json.loads(raw.get("modules") or "[]"):
        done = len(module["completedNodes"])
        modules.append({**module, "completedCount": done, "percent": _percent(done, module.get("totalNodes"))})
    counted = [m for m in modules if m.get("totalNodes")]
    total = sum(m["totalNodes"] for m in counted) if counted else None
    return {
        "pathId": raw["pathId"],
        "currentModule": raw.get("currentModule") or None,
        "currentNode": raw.get("currentNode") or None,
        "percent": _percent(sum(min(m["completedCount"], m["totalNodes"]) for m in counted), total),
        "completedCount": sum(m["completedCount"] for m in modules),
        "totalNodes": total,
        "timeSpentSeconds": sum(m["timeSpentSeconds"] for m in modules),
        "updatedAt": int(raw.get("updatedAt", 0)),
        "clientUpdatedAt": int(raw.get("clientUpdatedAt", 0)),
        "modules": modules,
    }


def _module(incoming: dict[str, Any]) -> dict[str, Any]:
    return {
        "moduleId": incoming["moduleId"],
        "completedNodes": sorted(set(incoming.get("completedNodes", []))),
        "totalNodes": incoming.get("totalNodes"),
        "timeSpentSeconds": incoming.get("timeSpentSeconds", 0),
        "currentNode": incoming.get("currentNode"),
    }


def _as_sent(data: dict[str, Any], client_at: int) -> dict[str, Any]:
    """The client's state as it was sent."""
    return {
        "currentModule": data.get("currentModule"),
        "currentNode": data.get("currentNode"),
        "clientUpdatedAt": client_at,
        "modules": [_module(m) for m in data.get("modules", [])],
    }


def _merge_module(stored: dict[str, Any], incoming: dict[str, Any], client_is_newer: bool) -> dict[str, Any]:
    totals = [t for t in (stored.get("totalNodes"), incoming.get("totalNodes")) if t is not None]
    current = incoming.get("currentNode") if client_is_newer and incoming.get("currentNode") else None
    return {
        "moduleId": stored["moduleId"],
        "completedNodes": sorted(set(stored["completedNodes"]) | set(incoming.get("completedNodes", []))),
        "totalNodes": max(totals) if totals else None,
        "timeSpentSeconds": max(stored["timeSpentSeconds"], incoming.get("timeSpentSeconds", 0)),
        "currentNode": current or stored.get("currentNode"),
    }


class ProgressManager:
    def get(self, user_id: str, path_id: str) -> dict[str, Any]:
        found = decode_progress(get_redis().hgetall(keys.progress(user_id, path_id)))
        if found is None:
            raise NotFound("progress")
        return found

    def list(self, user_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The learner's paths, most recently updated first (without their modules)."""
        path_ids = get_redis().zrevrange(keys.progress_paths(user_id), 0, limit - 1)
        return self.load_summaries(user_id, path_ids)

    @staticmethod
    def load_summaries(user_id: str, path_ids: list[str]) -> list[dict[str, Any]]:
        if not path_ids:
            return []
        pipe = pipeline()
        for path_id in path_ids:
            pipe.hgetall(keys.progress(user_id, path_id))
        found = [p for p in map(decode_progress, pipe.execute()) if p]
        return [{k: v for k, v in p.items() if k != "modules"} for p in found]

    def put(
        self, user: dict[str, Any], path_id: str, data: dict[str, Any], *, now: int | None = None
    ) -> dict[str, Any]:
        """Replace the path's state with the client's."""

        return self._save(user, path_id, data, lambda stored, client_at: _as_sent(data, client_at), now or now_us())

    def sync(
        self, user: dict[str, Any], path_id: str, data: dict[str, Any], *, now: int | None = None
    ) -> dict[str, Any]:
        """Merge an offline client's state into the stored one; nothing either side has is lost."""

        def merge(stored: dict[str, Any] | None, client_at: int) -> dict[str, Any]:
            if stored is None:
                return _as_sent(data, client_at)
            newer = client_at >= stored["clientUpdatedAt"]
            incoming = {m["moduleId"]: m for m in data.get("modules", [])}
            modules = []
            for module in stored["modules"]:
                other = incoming.pop(module["moduleId"], None)
                modules.append(_merge_module(module, other, newer) if other else _module(module))
            modules += [_module(m) for m in incoming.values()]
            pick = newer and ("currentModule" in data or "currentNode" in data)
            source = data if pick else stored
            return {
                "currentModule": source.get("currentModule"),
                "currentNode": source.get("currentNode"),
                "clientUpdatedAt": max(client_at, stored["clientUpdatedAt"]),
                "modules": modules,
            }

        return self._save(user, path_id, data, merge, now or now_us())

    def _save(self, user: dict[str, Any], path_id: str, data: dict[str, Any], build, now: int) -> dict[str, Any]:
        user_id, tz_name = user["id"], user.get("timezone") or "UTC"
        client_at = engine.check_past(data.get("updatedAt"), now, "updatedAt", bounded=False)
        # Work done offline counts on the day it was done, if that is within the backfill window.
        moment = client_at if engine.within_backfill(client_at, now) else now
        for _ in range(engine.CAS_ATTEMPTS):
            raw = get_redis().hgetall(keys.progress(user_id, path_id))
            stored = decode_progress(raw)
            state = build(stored, client_at)
            self._stamp(state["modules"], stored, now)
            added_seconds = self._added_seconds(stored, state["modules"])
            fields = {
                "pathId": path_id,
                "currentModule": state["currentModule"] or "",
                "currentNode": state["currentNode"] or "",
                "clientUpdatedAt": str(state["clientUpdatedAt"]),
                "updatedAt": str(now),
                "modules": json.dumps(state["modules"], separators=(",", ":")),
            }
            completed = [f"{m['moduleId']}/{node}" for m in state["modules"] for node in m["completedNodes"]]
            day, act = engine.activity_part(moment, tz_name, "item", seconds=added_seconds)
            part = {
                "expect": raw.get("version", ""),
                "fields": [x for kv in fields.items() for x in kv],
                "pathId": path_id,
                "updatedAt": str(now),
                "completed": completed,
                "itemXp": engine.xp_for("item"),
                "act": act,
            }
            extra = [
                keys.progress(user_id, path_id),
                keys.progress_paths(user_id),
                keys.progress_awarded(user_id, path_id),
            ]
            outcome = engine.run(lua.SAVE_PROGRESS, user_id, now, day, iso_week(moment), extra, progress=part)
            if outcome.conflict:
                continue
            saved = decode_progress(fields)
            summary = progress_summary_json(saved)
            outcome.events.append(("progress.updated", {**summary, "newItems": int(outcome.raw.get("newItems", 0))}))
            engine.publish(outcome, tz_name=tz_name, now=now)
            return saved  # type: ignore[return-value]
        raise Conflict("The progress kept changing; try again.")

    @staticmethod
    def _stamp(modules: list[dict[str, Any]], stored: dict[str, Any] | None, now: int) -> None:
        """Each module's updatedAt: now if it changed, else the stored one."""
        before = {m["moduleId"]: m for m in (stored or {}).get("modules", [])}
        for module in modules:
            old = before.get(module["moduleId"])
            same = old is not None and all(old.get(k) == module.get(k) for k in module if k != "updatedAt")
            module["updatedAt"] = old["updatedAt"] if same else now  # type: ignore[index]

    @staticmethod
    def _added_seconds(stored: dict[str, Any] | None, modules: list[dict[str, Any]]) -> int:
        before = {m["moduleId"]: m["timeSpentSeconds"] for m in (stored or {}).get("modules", [])}
        return sum(max(0, m["timeSpentSeconds"] - before.get(m["moduleId"], 0)) for m in modules)


progress = ProgressManager()
