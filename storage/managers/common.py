"""Small pieces the managers share."""

from __future__ import annotations

from typing import Any

from mookti.redis import Plan, register_script, run_plan

# KEYS[1] hash; ARGV field/value pairs. Creates the hash only if the key is free.
CREATE_IF_ABSENT = register_script(
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
)


class Credential:
    """A caller's credential checked in a read's first pipeline, so auth costs no round trip of
    its own (the hot reads of ``storage.api.hot``). :meth:`queue` adds its one command;
    :meth:`resolve` gets that command's reply and returns the acting user's id, or raises when
    the credential is not valid (nothing read in the same pipeline is used then)."""

    def queue(self, pipe: Any) -> None:
        raise NotImplementedError

    def resolve(self, reply: Any) -> str:
        raise NotImplementedError

    def check(self) -> str:
        """The check alone, one round trip (for a read whose keys depend on the user)."""
        return run_plan(self.check_plan())

    def check_plan(self) -> Plan[str]:
        """:meth:`check` as a read plan (:func:`mookti.redis.run_plan` / ``arun_plan``)."""
        replies = yield self.queue
        return self.resolve(replies[0])


Actor = str | None | Credential


def queue_actor(pipe: Any, actor: Actor) -> bool:
    """Queue ``actor``'s check first in ``pipe`` if it is a :class:`Credential`; True if queued."""
    if isinstance(actor, Credential):
        actor.queue(pipe)
        return True
    return False


def flat(fields: dict[str, Any]) -> list[Any]:
    """A mapping as the field/value argument list of HSET or a script."""
    return [x for kv in fields.items() for x in kv]


def create_if_absent(key: str, fields: dict[str, Any], client: Any = None) -> Any:
    """HSET ``fields`` into a new hash; replies 0 (and writes nothing) when ``key`` exists."""
    return CREATE_IF_ABSENT(keys=[key], args=flat(fields), client=client)
