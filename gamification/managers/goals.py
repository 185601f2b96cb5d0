"""Goals: ``user:{uid}:goal:{gid}`` hashes, indexed by due date while active and by completion
time once completed. "Expired" is derived: an active goal whose due date has passed.

Progress is either a percentage (0-100) or ``current``/``target``. Reaching 100% (or setting
status ``completed``) completes the goal: the goal, its index move and its XP are one Lua call
that also checks the goal's version (optimistic concurrency), so a goal is rewarded once even
when two requests complete it at the same time.
"""

from __future__ import annotations

from typing import Any

from gamification import keys, lua
from gamification.days import iso_week, local_date
from gamification.managers import engine
from mookti import events
from mookti.errors import Conflict, Invalid, NotFound
from mookti.ids import iso, new_id, now_us
from mookti.redis import Write, get_redis, pipeline

MEASURES = ("progress", "current", "target")


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def goal_json(goal: dict[str, Any]) -> dict[str, Any]:
    """A goal in the API's JSON shape (its events; the REST views' ``GoalOut`` gives the same, a test
    keeps them equal)."""
    return {**goal, **{name: iso(goal[name]) for name in ("dueDate", "createdAt", "updatedAt", "completedAt")}}


def decode_goal(raw: dict[str, str], now: int) -> dict[str, Any] | None:
    if not raw or "id" not in raw:
        return None
    due = _int_or_none(raw.get("dueDate"))
    status = raw.get("status", "active")
    if status == "active" and due is not None and due <= now:
        status = "expired"
    return {
        "id": raw["id"],
        "userId": raw.get("userId", ""),
        "title": raw.get("title", ""),
        "description": raw.get("description", ""),
        "progress": int(raw.get("progress", 0)),
        "current": int(raw.get("current", 0)),
        "target": _int_or_none(raw.get("target")),
        "dueDate": due,
        "status": status,
        "createdAt": int(raw.get("createdAt", 0)),
        "updatedAt": int(raw.get("updatedAt", 0)),
        "completedAt": _int_or_none(raw.get("completedAt")),
    }


def _encode(goal: dict[str, Any]) -> list[str]:
    fields = {
        name: "" if goal[name] is None else str(goal[name])
        for name in (
            "id",
            "userId",
            "title",
            "description",
            "progress",
            "current",
            "target",
            "dueDate",
            "status",
            "createdAt",
            "updatedAt",
            "completedAt",
        )
    }
    return [x for kv in fields.items() for x in kv]


def _check_due(due: int | None, now: int) -> None:
    if due is not None and due <= now:
        raise Invalid("The due date is in the past.", {"dueDate": ["Must be in the future."]})


def _measured(goal: dict[str, Any], changes: dict[str, Any]) -> None:
    """Apply progress/current/target changes; with a target, progress follows current/target."""
    if "target" in changes:
        goal["target"] = changes["target"]
    if "current" in changes:
        goal["current"] = changes["current"]
    if goal["target"] is not None:
        if "progress" in changes:
            # the request's own target: bad input; the goal's stored one: a conflict with its state
            error = Invalid if changes.get("target") is not None else Conflict
            raise error(
                "With a target, progress is current/target.", {"progress": ["Set current (or clear target) instead."]}
            )
        goal["progress"] = min(100, goal["current"] * 100 // goal["target"])
    elif "progress" in changes:
        goal["progress"] = changes["progress"]


class GoalManager:
    def create(self, user: dict[str, Any], data: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
        now = now or now_us()
        _check_due(data.get("dueDate"), now)
        goal = {
            "id": data.get("id") or new_id(),
            "userId": user["id"],
            "title": data["title"],
            "description": data.get("description", ""),
            "progress": 0,
            "current": 0,
            "target": None,
            "dueDate": data.get("dueDate"),
            "status": "active",
            "createdAt": now,
            "updatedAt": now,
            "completedAt": None,
        }
        _measured(goal, data)
        if goal["progress"] >= 100:
            raise Invalid("A new goal starts below 100%.", {"progress": ["A new goal must be below 100%."]})
        outcome = self._save(user, goal, expect="", create=True, now=now)
        if outcome.conflict:
            raise Conflict("A goal with this id already exists.", {"id": ["already exists"]})
        if outcome.full:
            limit = engine.config()["MAX_ACTIVE_GOALS"]
            raise Invalid(f"At most {limit} active goals.", {"goals": [f"At most {limit} active goals."]})
        saved = decode_goal(self._fields(goal), now)
        outcome.events.append(("goal.created", goal_json(saved)))
        engine.publish(outcome, tz_name=user.get("timezone") or "UTC", now=now)
        return saved  # type: ignore[return-value]

    def get(self, user_id: str, goal_id: str, *, now: int | None = None) -> dict[str, Any]:
        goal = decode_goal(get_redis().hgetall(keys.goal(user_id, goal_id)), now or now_us())
        if goal is None:
            raise NotFound("goal")
        return goal

    def list(
        self, user_id: str, status: str = "active", limit: int = 100, *, now: int | None = None
    ) -> list[dict[str, Any]]:
        """Active goals by due date (none last), then expired ones, then completed (newest first)."""
        now = now or now_us()
        pipe = pipeline()
        if status in ("active", "all"):
            pipe.zrangebyscore(keys.goals(user_id), f"({now}", "+inf", start=0, num=limit)
        if status in ("expired", "all"):
            pipe.zrangebyscore(keys.goals(user_id), "-inf", now, start=0, num=limit)
        if status in ("completed", "all"):
            pipe.zrevrange(keys.goals_completed(user_id), 0, limit - 1)
        ids = [goal_id for group in pipe.execute() for goal_id in group]
        return self.load(user_id, ids, now)

    @staticmethod
    def load(user_id: str, goal_ids: list[str], now: int) -> list[dict[str, Any]]:
        if not goal_ids:
            return []
        pipe = pipeline()
        for goal_id in goal_ids:
            pipe.hgetall(keys.goal(user_id, goal_id))
        return [g for g in (decode_goal(raw, now) for raw in pipe.execute()) if g]

    def update(
        self, user: dict[str, Any], goal_id: str, changes: dict[str, Any], *, now: int | None = None
    ) -> dict[str, Any]:
        now = now or now_us()
        for _ in range(engine.CAS_ATTEMPTS):
            raw = get_redis().hgetall(keys.goal(user["id"], goal_id))
            goal = decode_goal(raw, now)
            if goal is None:
                raise NotFound("goal")
            stored_status = raw.get("status", "active")
            changed = self._apply(goal, stored_status, changes, now)
            outcome = self._save(user, changed, expect=raw.get("version", ""), create=False, now=now)
            if outcome.conflict:
                continue
            saved = decode_goal(self._fields(changed), now)
            data = goal_json(saved)
            outcome.events.append(("goal.updated", data))
            if changed["status"] == "completed" and stored_status != "completed":
                outcome.events.append(("goal.completed", {**data, "xpAwarded": outcome.xp_awarded}))
            engine.publish(outcome, tz_name=user.get("timezone") or "UTC", now=now)
            return saved  # type: ignore[return-value]
        raise Conflict("The goal kept changing; try again.")

    @staticmethod
    def _apply(goal: dict[str, Any], stored_status: str, changes: dict[str, Any], now: int) -> dict[str, Any]:
        goal = {**goal, "status": stored_status}
        for name in ("title", "description"):
            if name in changes:
                goal[name] = changes[name]
        if "dueDate" in changes and changes["dueDate"] != goal["dueDate"]:
            _check_due(changes["dueDate"], now)
            goal["dueDate"] = changes["dueDate"]
        _measured(goal, changes)
        status = changes.get("status")
        reached = any(name in changes for name in MEASURES) and goal["progress"] >= 100
        if stored_status != "completed" and (status == "completed" or (status is None and reached)):
            goal.update(status="completed", completedAt=now, progress=100)
        elif stored_status == "completed" and status == "active":
            goal.update(status="active", completedAt=None)
        goal["updatedAt"] = now
        return goal

    @staticmethod
    def _fields(goal: dict[str, Any]) -> dict[str, str]:
        flat = _encode(goal)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    @staticmethod
    def _save(user: dict[str, Any], goal: dict[str, Any], *, expect: str, create: bool, now: int) -> engine.Outcome:
        tz_name = user.get("timezone") or "UTC"
        completed = goal["status"] == "completed"
        part = {
            "expect": expect,
            "create": create,
            "maxActive": engine.config()["MAX_ACTIVE_GOALS"],
            "fields": _encode(goal),
            "id": goal["id"],
            "completed": completed,
            "score": str(goal["dueDate"]) if goal["dueDate"] is not None else "+inf",
            "completedAt": str(goal["completedAt"] or now),
            "xp": engine.xp_for("goal"),
        }
        extra = [keys.goal(user["id"], goal["id"]), keys.goals(user["id"]), keys.goals_completed(user["id"])]
        return engine.run(lua.SAVE_GOAL, user["id"], now, local_date(now, tz_name), iso_week(now), extra, goal=part)

    def delete(self, user_id: str, goal_id: str, *, now: int | None = None) -> dict[str, Any]:
        """Unindex and delete in one step (the goal and its indexes share the user's slot)."""
        goal = self.get(user_id, goal_id, now=now)
        write = Write()

        def remove(p: Any) -> None:
            p.zrem(keys.goals(user_id), goal_id)
            p.zrem(keys.goals_completed(user_id), goal_id)
            p.delete(keys.goal(user_id, goal_id))

        write.step(remove)
        events.stage(write, user_id, "goal.deleted", {"id": goal_id})
        write.execute()
        return goal


goals = GoalManager()
