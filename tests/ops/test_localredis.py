"""The Redis that `make run` / `make test` start when none answers: durable settings, real server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from mookti import localredis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def local_redis(tmp_path: Path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    process = localredis.start(url, tmp_path / "redis")
    client = redis.Redis.from_url(url, decode_responses=True)
    yield url, client, process
    client.close()
    localredis.stop(process)


def test_started_server_uses_aof_and_noeviction(local_redis, tmp_path):
    _, client, _ = local_redis
    config = client.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    assert Path(config["dir"]) == tmp_path / "redis"
    assert localredis.config_warnings(client) == []


def test_warnings_name_missing_persistence_and_eviction(local_redis):
    _, client, _ = local_redis
    client.config_set("appendonly", "no")
    client.config_set("save", "")
    client.config_set("maxmemory-policy", "allkeys-lru")
    warnings = localredis.config_warnings(client)
    assert len(warnings) == 2
    assert "persistence is off" in warnings[0] and "nothing kept on disk" in warnings[0]
    assert "'allkeys-lru'" in warnings[1] and "noeviction" in warnings[1]


def test_rdb_only_is_reported_as_not_durable_enough(local_redis):
    _, client, _ = local_redis
    client.config_set("appendonly", "no")
    client.config_set("save", "3600 1")
    (warning,) = localredis.config_warnings(client)
    assert "only RDB snapshots" in warning


def test_started_server_keeps_chats_compact_and_warns_below_it(local_redis):
    _, client, _ = local_redis
    config = client.config_get("hash-max-listpack-*")
    assert config == {"hash-max-listpack-value": "8192", "hash-max-listpack-entries": "256"}
    client.config_set("hash-max-listpack-entries", 128)
    (warning,) = localredis.config_warnings(client)
    assert "hash-max-listpack-entries is 128" in warning and "Set it to 256" in warning


def test_data_survives_a_restart(tmp_path):
    """AOF: what was written before SIGTERM is there after the next start from the same folder."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    process = localredis.start(url, tmp_path / "redis")
    client = redis.Redis.from_url(url, decode_responses=True)
    client.hset("user:{u1}", mapping={"id": "u1", "name": "Ada"})
    client.close()
    assert localredis.stop(process) == 0
    assert (tmp_path / "redis" / "appendonlydir").is_dir()

    process = localredis.start(url, tmp_path / "redis")
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert client.hgetall("user:{u1}") == {"id": "u1", "name": "Ada"}
    finally:
        client.close()
        localredis.stop(process)


def test_answers_is_false_for_a_port_nobody_serves():
    assert not localredis.answers(f"redis://127.0.0.1:{free_port()}/0")


@pytest.mark.parametrize("url", ["redis://redis.example.com:6379/0", "rediss://127.0.0.1:6380/0", "unix:///tmp/x"])
def test_only_local_plain_urls_are_started(url, tmp_path):
    with pytest.raises(localredis.LocalRedisError):
        localredis.server_args(url, tmp_path)


def test_password_in_url_becomes_requirepass(tmp_path):
    args = localredis.server_args("redis://:s3cret@localhost:6400/2", tmp_path)
    assert args[args.index("--requirepass") + 1] == "s3cret"
    assert args[args.index("--port") + 1] == "6400"
    assert args[args.index("--bind") + 1] == "localhost"


def test_started_server_keeps_stream_nodes_small_and_warns_when_not(local_redis):
    """A user's event stream preallocates stream-node-max-bytes for its newest node."""
    _, client, _ = local_redis
    assert client.config_get("stream-node-max-bytes")["stream-node-max-bytes"] == "2048"
    for value in ("4096", "0"):  # 0: no byte limit (Redis preallocates 4096)
        client.config_set("stream-node-max-bytes", value)
        (warning,) = localredis.config_warnings(client)
        assert f"stream-node-max-bytes is {value}" in warning and "Set it to 2048" in warning
