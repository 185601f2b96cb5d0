"""``mookti.redis.delete_prefix``: how test runs and the benchmark remove their namespace."""

from __future__ import annotations

import pytest

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


def test_an_empty_prefix_is_refused_and_deletes_nothing() -> None:
    get_redis().set(key("ops-delete-guard"), "1")
    for prefix in ("", "m"):
        with pytest.raises(ValueError, match="refusing"):
            delete_prefix(prefix)
    assert get_redis().get(key("ops-delete-guard")) == "1"
    get_redis().delete(key("ops-delete-guard"))
