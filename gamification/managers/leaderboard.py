"""The weekly leaderboard: one sorted set per ISO week (Monday 00:00 UTC), user id -> XP.

Scores are written by ``engine.publish`` (ZADD GT of the learner's weekly XP total, with the
time it was reached below it: ``engine.board_score``). Equal XP: who reached it first ranks first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gamification import keys, lua
from gamification.days import iso_week, week_start
from gamification.managers import engine
from mookti.ids import now_us, to_us
from storage.managers import users


def _pairs(flat: list[Any]) -> list[tuple[str, int]]:
    return [(member, engine.board_xp(score)) for member, score in zip(flat[::2], flat[1::2], strict=True)]


class LeaderboardManager:
    def weekly(
        self,
        user_id: str,
        week: str | None = None,
        *,
        neighbours: int = 2,
        size: int | None = None,
        now: int | None = None,
    ) -> dict[str, Any]:
        """The top of the week's board, the caller's rank (1-based) and the entries around it."""
        week = week or iso_week(now or now_us())
        size = size or engine.config()["LEADERBOARD_SIZE"]
        top, rank, around, first, total = lua.READ_LEADERBOARD([keys.leaderboard(week)], [user_id, size, neighbours])
        top_pairs, around_pairs = _pairs(top), _pairs(around)
        ids = list(dict.fromkeys(member for member, _ in top_pairs + around_pairs))
        names = {uid: (u or {}).get("name", "") for uid, u in zip(ids, users.get_many(ids), strict=True)}

        def entries(pairs: list[tuple[str, int]], start: int) -> list[dict[str, Any]]:
            return [
                {"rank": start + i + 1, "userId": uid, "name": names.get(uid, ""), "xp": xp, "isMe": uid == user_id}
                for i, (uid, xp) in enumerate(pairs)
            ]

        neighbourhood = entries(around_pairs, int(first)) if int(rank) >= 0 else []
        me = next((e for e in neighbourhood if e["isMe"]), None)
        starts = week_start(week)
        return {
            "week": week,
            "startsAt": to_us(starts),
            "endsAt": to_us(starts + timedelta(weeks=1)) - 1,
            "size": int(total),
            "top": entries(top_pairs, 0),
            "me": me,
            "neighbours": neighbourhood,
        }


leaderboard = LeaderboardManager()
