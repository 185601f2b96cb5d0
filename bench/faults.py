"""Redis killed (kill -9) or frozen (SIGSTOP) under write load, against a real web server and indexer.

    .venv/bin/python -m bench.faults                   # down 60 s, then frozen 30 s (the issue's goals)
    .venv/bin/python -m bench.faults --down 10 --freeze 10 --writers 4

Starts its own redis-server (AOF everysec, noeviction), a uvicorn web process and a
``run_indexer`` process (OpenAI-compatible fake embeddings, LanceDB) on it. Writer threads post
messages (and now and then a chat) through the API, each with an ``Idempotency-Key``, and retry
every refused attempt with the same key until it is acknowledged (201). Meanwhile Redis is
killed and restarted from its AOF, then frozen and resumed. Printed per fault:

- attempts during the fault, their slowest answer, answers other than 201 or a 503 JSON error,
  and the slowest ``/api/health/`` answer meanwhile (polled every 0.2 s);
- recovery: from Redis answering again to the first acknowledged write;
- and at the end: acknowledged writes lost, writes applied twice (a message text stored twice,
  or two ``message.created`` events for one message), processes still running, the indexer's
  backlog, and what ``manage.py repair`` finds.

The tests (``tests/reliability/test_redis_faults.py``) run a short version through :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script too: the storage entities decode what it reads back

from mookti.events import decode  # noqa: E402 - after the path
from storage.entities import Message  # noqa: E402

SERVICE_KEY = "bench-faults-service-key-0123456789"
DIMENSION = 64
REQUEST_TIMEOUT = 30.0  # far above any bound: a request that takes this long is a finding


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Attempt:
    started: float
    seconds: float
    status: int
    json_error: bool  # a JSON body with {"error": {"code": ...}}


@dataclass
class Load:
    """What the writers did: every attempt, and the acknowledged writes."""

    attempts: list[Attempt] = field(default_factory=list)
    health: list[Attempt] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # message id -> text
    chats: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


class Rig:
    """A private Redis, a web process and an indexer process, all on that Redis."""

    def __init__(self, workdir: Path) -> None:
        from mookti import localredis
        from tests.search.fakes import FakeOpenAI

        self.dir = workdir
        self.url = f"redis://127.0.0.1:{free_port()}/0"
        self.prefix = f"bench-faults-{uuid.uuid4().hex[:8]}:"
        self.redis_dir = workdir / "redis"
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self.redis = localredis.start(self.url, self.redis_dir)
        self.fake = FakeOpenAI().start()
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mookti.settings",
            "REDIS_URL": self.url,
            "REDIS_CLUSTER": "false",  # its own standalone redis-server, also in the cluster pass
            "CHANNEL_REDIS_URL": self.url,
            "MOOKTI_REDIS_PREFIX": self.prefix,
            "MOOKTI_SERVICE_KEY": SERVICE_KEY,
            "MOOKTI_LIMIT_PRO": "1000000",
            "MOOKTI_EMBEDDINGS_BACKEND": "openai",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"{self.fake.url}/v1",
            "OPENAI_EMBEDDING_DIMENSIONS": str(DIMENSION),
            "MOOKTI_VECTOR_BACKEND": "lancedb",
            "MOOKTI_LANCEDB_PATH": str(workdir / "lancedb"),
        }
        python = sys.executable
        self.web = subprocess.Popen(
            [python, "-m", "uvicorn", "mookti.asgi:application", *self._web_options()],
            cwd=ROOT,
            env=self.env,
            stderr=open(workdir / "web.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        self.indexer = subprocess.Popen(
            [python, "manage.py", "run_indexer"],
            cwd=ROOT,
            env=self.env,
            stderr=open(workdir / "indexer.log", "wb"),  # noqa: SIM115
        )
        self.client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=2)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=REQUEST_TIMEOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http.get("/api/health/live").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the web process did not start; see " + str(workdir / "web.log"))

    def _web_options(self) -> list[str]:
        return ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "--no-access-log"]

    # --- faults -------------------------------------------------------------------------------
    def kill(self) -> None:
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()

    def restart(self) -> None:
        from mookti import localredis

        self.redis = localredis.start(self.url, self.redis_dir)

    def freeze(self) -> None:
        self.redis.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.redis.send_signal(signal.SIGCONT)

    def wait_answering(self) -> float:
        """Block until Redis answers a PING; returns that moment (monotonic)."""
        while True:
            try:
                self.client.ping()
                return time.monotonic()
            except redis.RedisError:
                time.sleep(0.01)

    # --- state --------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def running(self) -> dict[str, bool]:
        return {"web": self.web.poll() is None, "indexer": self.indexer.poll() is None}

    def backlog(self) -> int:
        """Outbox entries not yet indexed (pending or never delivered)."""
        stream = self.key("outbox:index")
        try:
            groups = self.client.xinfo_groups(stream)
        except redis.ResponseError:
            return 0
        return sum(int(g.get("lag") or 0) + int(g.get("pending") or 0) for g in groups)

    def repair(self) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "manage.py", "repair", "--no-progress"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return done.returncode, (done.stdout + done.stderr).strip().splitlines()[-1]

    def close(self) -> None:
        from mookti import localredis

        self.resume()
        for process in (self.indexer, self.web):
            process.send_signal(signal.SIGTERM)
        for process in (self.indexer, self.web):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.http.close()
        self.client.close()
        localredis.stop(self.redis)
        self.fake.stop()


# --- load --------------------------------------------------------------------------------------
def _post(rig: Rig, load: Load, user_id: str, path: str, body: dict[str, Any]) -> dict[str, Any] | list[Any]:
    """POST with one Idempotency-Key until acknowledged; every attempt is recorded."""
    headers = {"Authorization": f"Bearer {SERVICE_KEY}", "X-Mookti-User": user_id, "Idempotency-Key": uuid.uuid4().hex}
    while True:
        started = time.monotonic()
        try:
            response = rig.http.post(path, json=body, headers=headers)
            status = response.status_code
            try:
                payload = response.json()
            except ValueError:
                payload = None
        except httpx.HTTPError:
            status, payload = 0, None
        seconds = time.monotonic() - started
        is_error = isinstance(payload, dict) and isinstance(payload.get("error"), dict)
        with load.lock:
            load.attempts.append(Attempt(started, seconds, status, is_error))
        if status == 201:
            return payload  # type: ignore[return-value]
        if load.stop.is_set() and status == 0:
            raise RuntimeError("the web process stopped answering")
        time.sleep(0.1)


def _writer(rig: Rig, load: Load, number: int, user_id: str, chat_id: str) -> None:
    sequence = 0
    while not load.stop.is_set():
        sequence += 1
        if sequence % 25 == 0:  # now and then a new chat: an atomic create, also retried
            chat_id = _post(rig, load, user_id, "/api/storage/chat", {"title": f"w{number} #{sequence}"})["id"]
            with load.lock:
                load.chats.append(chat_id)
        text = f"writer {number} message {sequence} " + "lorem ipsum " * 20
        body = {"chatId": chat_id, "role": "user", "parts": [{"type": "text", "text": text}]}
        saved = _post(rig, load, user_id, "/api/storage/message", body)
        with load.lock:
            load.acknowledged[saved[0]["id"]] = text


def _health(rig: Rig, load: Load) -> None:
    while not load.stop.wait(0.2):
        started = time.monotonic()
        try:
            status = rig.http.get("/api/health/").status_code
        except httpx.HTTPError:
            status = 0
        with load.lock:
            load.health.append(Attempt(started, time.monotonic() - started, status, True))


@contextmanager
def writing(rig: Rig, writers: int) -> Iterator[Load]:
    load = Load()
    threads = [threading.Thread(target=_health, args=(rig, load), daemon=True)]
    threads[0].start()
    for number in range(writers):
        user = rig.http.post(
            "/api/storage/user",
            json={"email": f"w{number}-{uuid.uuid4().hex[:6]}@example.com", "type": "pro"},
            headers={"Authorization": f"Bearer {SERVICE_KEY}"},
        ).json()
        chat = _post(rig, load, user["id"], "/api/storage/chat", {"title": f"writer {number}"})
        load.chats.append(chat["id"])
        thread = threading.Thread(target=_writer, args=(rig, load, number, user["id"], chat["id"]), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield load
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT * 2)


# --- the scenario ------------------------------------------------------------------------------
def _window(load: Load, start: float, end: float) -> list[Attempt]:
    with load.lock:
        return [a for a in load.attempts if start <= a.started < end]


def fault(rig: Rig, load: Load, kind: str, seconds: float) -> dict[str, Any]:
    """One fault of ``seconds``; figures about the attempts during it and the recovery after it."""
    began = time.monotonic()
    if kind == "down":
        rig.kill()
    else:
        rig.freeze()
    time.sleep(seconds)
    if kind == "down":
        rig.restart()
    else:
        rig.resume()
    answering = rig.wait_answering()
    deadline = answering + 30
    recovered = None
    while time.monotonic() < deadline and recovered is None:
        time.sleep(0.02)
        with load.lock:
            done = [
                a.started + a.seconds for a in load.attempts if a.status == 201 and a.started + a.seconds > answering
            ]
        recovered = min(done) if done else None
    during = _window(load, began, answering)
    with load.lock:
        health = [a for a in load.health if began <= a.started < answering]
    bad = [a for a in during if not (a.status == 201 or (a.status == 503 and a.json_error))]
    slowest = max(during, key=lambda a: a.seconds, default=None)
    return {
        "fault": f"{kind} {seconds:g} s",
        "slowest_detail": f"status {slowest.status}, started {slowest.started - began:.2f} s into the fault"
        if slowest
        else "",
        "attempts": len(during),
        "slowest_s": round(max((a.seconds for a in during), default=0.0), 3),
        "bad_answers": len(bad),
        "bad_statuses": dict(Counter(a.status for a in bad)),
        "recovery_s": round(recovered - answering, 3) if recovered else None,
        "answering_s": round(answering - began, 2),
        "health_slowest_s": round(max((a.seconds for a in health), default=0.0), 3),
        "health_statuses": dict(Counter(a.status for a in health)),
    }


def verify(rig: Rig, load: Load, drain_timeout: float = 60.0) -> dict[str, Any]:
    """Lost and doubled writes, processes, the indexer's backlog and repair, after the load stopped."""
    client = rig.client
    texts: Counter[str] = Counter()
    stored: set[str] = set()
    for chat_id in load.chats:
        ids = client.zrange(rig.key(f"chat:{{{chat_id}}}:messages"), 0, -1)
        values = client.hmget(rig.key(f"chat:{{{chat_id}}}:message-data"), ids) if ids else []
        for message_id, value in zip(ids, values, strict=True):
            message = Message.stored(chat_id, message_id, value)  # the entity's decoding
            if message:
                stored.add(message_id)
                texts[message["parts"][0]["text"]] += 1
    events: Counter[str] = Counter()
    with redis.Redis.from_url(rig.url, socket_timeout=2) as binary:  # events are packed: bytes, the service's decoder
        for name in client.scan_iter(match=f"{rig.prefix}user:*:events", count=1000):
            for _, fields in binary.xrange(name):
                if (event := decode(fields)) and event[0] == "message.created":
                    events[json.loads(event[1])["id"]] += 1
    deadline = time.monotonic() + drain_timeout
    while rig.backlog() and time.monotonic() < deadline:
        time.sleep(0.2)
    code, summary = rig.repair()
    return {
        "acknowledged": len(load.acknowledged),
        "lost": len(set(load.acknowledged) - stored),
        "applied_twice": sum(n - 1 for n in texts.values() if n > 1) + sum(n - 1 for n in events.values() if n > 1),
        "running": rig.running(),
        "index_backlog": rig.backlog(),
        "repair": summary,
        "repair_exit": code,
    }


def run(down: float, freeze: float, writers: int, warm: float = 2.0, workdir: Path | None = None) -> dict[str, Any]:
    """The whole scenario; returns the figures (also used by the tests)."""
    with tempfile.TemporaryDirectory(prefix="mookti-faults-") as tmp:
        rig = Rig(workdir or Path(tmp))
        try:
            with writing(rig, writers) as load:
                time.sleep(warm)
                faults = []
                if down:
                    faults.append(fault(rig, load, "down", down))
                    time.sleep(warm)
                if freeze:
                    faults.append(fault(rig, load, "frozen", freeze))
                    time.sleep(warm)
            return {"faults": faults, "after": verify(rig, load)}
        finally:
            rig.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--down", type=float, default=60.0, help="seconds Redis stays killed (0: skip)")
    parser.add_argument("--freeze", type=float, default=30.0, help="seconds Redis stays frozen (0: skip)")
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    figures = run(args.down, args.freeze, args.writers)
    header = f"{'fault':<14} {'attempts':>8} {'slowest s':>10} {'bad answers':>12} {'recovery s':>11}"
    print(f"{header} {'health slowest s':>17}")
    for row in figures["faults"]:
        print(
            f"{row['fault']:<14} {row['attempts']:>8} {row['slowest_s']:>10} {row['bad_answers']:>12} "
            f"{row['recovery_s']!s:>11} {row['health_slowest_s']:>17}"
        )
        print(f"{'':<14} slowest: {row['slowest_detail']} (Redis answered again at {row['answering_s']} s)")
        if row["bad_answers"]:
            print(f"{'':<14} statuses other than 201 and 503 JSON: {row['bad_statuses']}")
    after = figures["after"]
    print()
    for name in ("acknowledged", "lost", "applied_twice", "running", "index_backlog", "repair", "repair_exit"):
        print(f"{name:<14} {after[name]}")


if __name__ == "__main__":
    main()
