"""`manage.py serve` (what `make run` runs), as a real process tree: own Redis, uvicorn, signals."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from mookti import localredis
from mookti.management.commands.serve import Supervisor, redis_warnings
from tests.ops.test_localredis import free_port

ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE = 120.0

pytestmark = pytest.mark.slow


class Serve:
    """``manage.py serve --no-indexer`` on free ports, with a Redis URL nobody serves yet."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        env = {**os.environ, "REDIS_URL": self.redis_url, "MOOKTI_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        env.pop("CHANNEL_REDIS_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-indexer", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health/", timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while "is running on" not in self.output:
            assert self.process.poll() is None, f"serve exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"serve did not start:\n{self.output}"
            time.sleep(0.2)

    def child_pid(self, name: str) -> int:
        match = re.search(rf"started {name} \(pid (\d+)", self.output)
        assert match, self.output
        return int(match.group(1))

    def wait_exit(self) -> int:
        code = self.process.wait(START_DEADLINE)
        self.reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(tmp_path):
    running = Serve(tmp_path)
    yield running
    running.kill()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    status = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1]
    return not status.startswith("Z")


def test_serve_starts_its_own_durable_redis_and_stops_everything_on_sigterm(serve, tmp_path):
    serve.wait_until_ready()
    status, body = serve.health()
    assert (status, body["status"], body["checks"]["redis"]["ok"]) == (200, "ok", True)
    for path in ("/api/docs/", "/api/schema/", "/api/health/", "/admin/"):
        assert f"127.0.0.1:{serve.port}{path}" in serve.output
    client = redis.Redis.from_url(serve.redis_url, decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    client.close()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()
    web = serve.child_pid("web")

    serve.process.send_signal(signal.SIGTERM)

    assert serve.wait_exit() == 0, serve.output
    assert not pid_alive(web)
    assert not localredis.answers(serve.redis_url)
    assert "stopped redis-server (exit code 0)" in serve.output


def test_when_one_child_dies_the_rest_is_stopped_and_serve_fails(serve):
    serve.wait_until_ready()
    os.kill(serve.child_pid("web"), signal.SIGKILL)

    assert serve.wait_exit() == 1, serve.output
    assert "web exited with code -9; stopping the rest" in serve.output
    assert not localredis.answers(serve.redis_url)


CHILD = """
import signal, sys, time
name, log = sys.argv[1], sys.argv[2]
def stop(*_):
    with open(log, "a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(log + "." + name, "w").close()
time.sleep(600)
"""


def test_supervisor_stops_children_newest_first(tmp_path):
    """Web and indexer go before the Redis they write to."""
    log = tmp_path / "stopped"
    supervisor = Supervisor(stdout=io.StringIO())
    names = ("redis", "web", "indexer")
    for name in names:
        supervisor.spawn(name, [sys.executable, "-c", CHILD, name, str(log)])
    deadline = time.monotonic() + START_DEADLINE
    while not all(Path(f"{log}.{name}").exists() for name in names):  # signal handlers installed
        assert time.monotonic() < deadline
        time.sleep(0.05)

    supervisor.stop_all()

    assert log.read_text().split() == ["indexer", "web", "redis"]
    assert [c.process.returncode for c in supervisor.children] == [0, 0, 0]


def test_redis_warnings_check_the_redis_in_use(settings):
    """The shared test Redis is whatever the machine runs: the check returns a list either way."""
    warnings = redis_warnings()
    assert all(isinstance(w, str) for w in warnings)
