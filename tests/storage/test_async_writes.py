"""The event loop's Redis path (mookti.redis: Write.aexecute, arun_plan) answers as the sync one.

Both go through mookti.redis's own round trips on a standalone Redis (one write, one timeout); an
error reply is raised as redis-py raises it and leaves the connection usable.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis

from mookti.redis import Write, arun_plan, get_redis, is_cluster, key, run_plan

pytestmark = pytest.mark.skipif(is_cluster(), reason="on a cluster a write runs in a worker thread (the sync path)")


def steps(write: Write, names: dict[str, str]) -> None:
    write.step(lambda p: p.hset(names["hash"], mapping={"a": "1", "b": "2"}))
    write.step(lambda p: (p.zadd(names["zset"], {"m": 3}), p.incr(names["counter"])))
    write.step(lambda p: (p.hgetall(names["hash"]), p.zrange(names["zset"], 0, -1, withscores=True)))


def fresh() -> dict[str, str]:
    tag = uuid.uuid4().hex
    return {name: key(f"test-async-writes:{tag}:{name}") for name in ("hash", "zset", "counter", "text")}


def test_a_write_and_a_read_answer_as_the_sync_path():
    sync_names, async_names = fresh(), fresh()
    sync_write, async_write = Write(), Write()
    steps(sync_write, sync_names)
    steps(async_write, async_names)
    committed: list[Any] = []
    async_write.on_commit(committed.append)

    def plan(names: dict[str, str]) -> Any:
        found = yield lambda p: (p.hgetall(names["hash"]), p.get(names["counter"]), p.hget(names["hash"], "x"))
        return found

    async def on_loop() -> tuple[list[list[Any]], Any]:
        return await async_write.aexecute(), await arun_plan(plan(async_names))

    async_replies, async_read = asyncio.run(on_loop())
    assert async_replies == sync_write.execute()
    assert async_replies[2] == [{"a": "1", "b": "2"}, [("m", 3.0)]]
    assert committed == [async_replies]
    assert async_read == run_plan(plan(sync_names)) == [{"a": "1", "b": "2"}, "1", None]


def test_an_error_reply_is_raised_and_the_connection_stays_in_step():
    names = fresh()
    get_redis().set(names["text"], "not a hash")
    write = Write()
    write.step(lambda p: p.hset(names["text"], "field", "value"))  # WRONGTYPE at EXEC
    write.step(lambda p: p.incr(names["counter"]))  # still applied: MULTI/EXEC does not roll back

    def bad_read() -> Any:
        return (yield lambda p: (p.hgetall(names["text"]), p.get(names["counter"])))

    def good_read() -> Any:
        return (yield lambda p: (p.get(names["text"]), p.get(names["counter"])))

    async def on_loop() -> list[Any]:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await write.aexecute()
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await arun_plan(bad_read())
        return await arun_plan(good_read())

    assert asyncio.run(on_loop()) == ["not a hash", "1"]
