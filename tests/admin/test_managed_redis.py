"""The operations page and the raw key browser on a managed-style Redis that refuses some commands.

Upstash, ElastiCache and Memorystore refuse some of SLOWLOG, MEMORY USAGE, CONFIG and INFO. This
test starts its own ``redis-server`` with those commands renamed away (as such services do) and
asserts the pages still answer 200, show what they could read, and name what was refused.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client, override_settings
from django.urls import reverse

from mookti.redis import close_clients, get_redis, key

REFUSED = ("SLOWLOG", "CONFIG", "MEMORY", "INFO")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def managed_redis(tmp_path: Path) -> Iterator[str]:
    """A private redis-server without SLOWLOG, CONFIG, MEMORY and INFO, used as ``REDIS_URL``."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    args += ["--save", "", "--appendonly", "no"]
    for command in REFUSED:
        args += ["--rename-command", command, ""]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        with override_settings(REDIS_URL=url, REDIS_CLUSTER=False):
            close_clients()
            yield url
    finally:
        probe.close()
        close_clients()
        process.terminate()
        process.wait(timeout=10)


def test_operations_page_degrades_where_commands_are_refused(staff_client: Client, managed_redis: str) -> None:
    client = get_redis()
    with pytest.raises(redis.ResponseError):
        client.slowlog_get()  # the server really refuses it
    client.hset(key("user:{managed-probe}"), mapping={"email": "probe@example.com"})
    response = staff_client.get(reverse("admin:mookti_operations"))
    assert response.status_code == 200
    notes = " ".join(response.context["notes"])
    for refused in ("SLOWLOG", "CONFIG GET", "MEMORY USAGE", "INFO server"):
        assert f"refuses {refused}" in notes
    body = response.content.decode()
    assert "This Redis refuses SLOWLOG" in body
    # what could be read is still there: the keyspace scan found the probe key
    assert ("user:{*}", "hash") in {(row["namespace"], row["type"]) for row in response.context["analysis"]["rows"]}
    assert response.context["slowlog"] == []


def test_raw_key_pages_work_without_memory_usage(staff_client: Client, managed_redis: str) -> None:
    name = key("user:{managed-probe}")
    get_redis().hset(name, mapping={"email": "probe@example.com"})
    listing = staff_client.get(reverse("admin:mookti_keys"), {"pattern": "user:*"})
    assert listing.status_code == 200
    assert [(row["name"], row["memory"]) for row in listing.context["rows"]] == [(name, None)]
    detail = staff_client.get(reverse("admin:mookti_key"), {"key": name})
    assert detail.status_code == 200
    assert "probe@example.com" in detail.content.decode()
