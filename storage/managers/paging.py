"""Keyset pagination over a ZSET in one round trip.

The cursor is a member id (as ai-chatbot's ``startingAfter``/``endingBefore``), so the
script looks up its rank and reads the page in the same call: an unknown cursor is reported
instead of silently giving the first page. As in ai-chatbot, a page is the first ``limit``
members *in listing order* among those on the cursor's side: ``endingBefore`` in a
newest-first chat list continues right after the cursor, ``startingAfter`` gives the newest
chats newer than it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mookti.redis import register_script

# KEYS[1] zset; ARGV: cursor ('' = none), side ('newer'|'older'), order ('asc'|'desc'), count.
# Reply: {found (0/1), id, id, ...}. Positions are ranks, i.e. (score, member) order, so members
# that share the cursor's score are neither skipped nor repeated.
PAGE_SCRIPT = register_script(
    """
local cursor, side, order, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local desc = order == 'desc'
local lo, hi = 0, -1
if cursor ~= '' then
  local at
  if desc then at = redis.call('ZREVRANK', KEYS[1], cursor) else at = redis.call('ZRANK', KEYS[1], cursor) end
  if not at then return {0} end
  -- in a newest-first listing the newer members come before the cursor (none if it is first)
  if (side == 'newer') == desc then
    if at == 0 then return {1} end
    lo, hi = 0, at - 1
  else
    lo, hi = at + 1, -1
  end
end
local stop = lo + count - 1
if hi ~= -1 and hi < stop then stop = hi end
local ids
if desc then ids = redis.call('ZRANGE', KEYS[1], lo, stop, 'REV') else ids = redis.call('ZRANGE', KEYS[1], lo, stop) end
table.insert(ids, 1, 1)
return ids
"""
)


@dataclass(frozen=True)
class PageRequest:
    """``starting_after`` selects members newer than the cursor, ``ending_before`` older ones."""

    limit: int = 20
    starting_after: str | None = None
    ending_before: str | None = None
    order: str = "desc"

    def queue(self, pipe: Any, zset_key: str) -> None:
        """Queue the page read (limit + 1 ids, to know ``hasMore``) on a pipeline."""
        cursor = self.starting_after or self.ending_before or ""
        side = "newer" if self.starting_after else "older"
        PAGE_SCRIPT(keys=[zset_key], args=[cursor, side, self.order, self.limit + 1], client=pipe)

    def split(self, reply: list[Any]) -> tuple[bool, list[str], bool]:
        """(cursor found, ids of the page, has more)."""
        found, ids = bool(int(reply[0])), list(reply[1:])
        return found, ids[: self.limit], len(ids) > self.limit
