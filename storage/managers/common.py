"""Small pieces the managers share."""

from __future__ import annotations

from typing import Any

from mookti.redis import register_script

# KEYS[1] hash; ARGV field/value pairs. Creates the hash only if the key is free.
CREATE_IF_ABSENT = register_script(
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
)


def flat(fields: dict[str, Any]) -> list[Any]:
    """A mapping as the field/value argument list of HSET or a script."""
    return [x for kv in fields.items() for x in kv]


def create_if_absent(key: str, fields: dict[str, Any], client: Any = None) -> Any:
    """HSET ``fields`` into a new hash; replies 0 (and writes nothing) when ``key`` exists."""
    return CREATE_IF_ABSENT(keys=[key], args=flat(fields), client=client)
