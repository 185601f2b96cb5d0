"""Keyset pagination over a ZSET in one round trip.

The cursor is a member id (as ai-chatbot's ``startingAfter``/``endingBefore``), so the
script looks up its score and reads the page next to it in the same call: an unknown
cursor is reported instead of silently giving the first page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mookti.redis import register_script

# KEYS[1] zset; ARGV: cursor ('' = none), side ('newer'|'older'), order ('asc'|'desc'), count.
# Reply: {found (0/1), id, id, ...}
PAGE_SCRIPT = register_script(
    """
local cursor, side, order, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local low, high = '-inf', '+inf'
if cursor ~= '' then
  local score = redis.call('ZSCORE', KEYS[1], cursor)
  if not score then return {0} end
  if side == 'newer' then low = '(' .. score else high = '(' .. score end
end
local ids
if order == 'desc' then
  ids = redis.call('ZRANGE', KEYS[1], high, low, 'BYSCORE', 'REV', 'LIMIT', 0, count)
else
  ids = redis.call('ZRANGE', KEYS[1], low, high, 'BYSCORE', 'LIMIT', 0, count)
end
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
