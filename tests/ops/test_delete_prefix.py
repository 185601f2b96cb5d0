"""``mookti.redis.delete_prefix``: how test runs and the benchmark remove their namespace."""

from __future__ import annotations

from mookti.redis import delete_prefix, get_redis, key


def test_removes_exactly_the_keys_under_the_prefix():
    client = get_redis()
    inside = [key(f"ops-delete[1]*:{n}") for n in range(1203)]
    neighbours = [key("ops-delete[1]x:kept"), key("ops-delete11*:kept"), key("ops-delete[1]")]
    pipe = client.pipeline(transaction=False)
    for name in inside + neighbours:
        pipe.set(name, "1")
    pipe.execute()

    assert delete_prefix(key("ops-delete[1]*:"), batch_size=500) == len(inside)

    assert client.exists(*inside) == 0
    assert client.exists(*neighbours) == len(neighbours)
    client.delete(*neighbours)
