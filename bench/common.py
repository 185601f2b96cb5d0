"""Pieces the benchmarks share: a keep-alive HTTP/1.1 client, the server they start, /proc usage.

- :class:`Connection`: a minimal asyncio HTTP/1.1 client (one keep-alive connection), so that the
  client's own CPU cost (it shares the machine's cores with the server) stays small next to the
  server's.
- :class:`Server`: starts the service on a free loopback port with a unique ``MOOKTI_REDIS_PREFIX``
  and a random service key, either as a bare uvicorn (``mookti.asgi:application``) or supervised by
  ``manage.py serve`` (web processes and indexers), and removes every key of its prefix at the end.
- :func:`process_usage` / :func:`descendants`: CPU seconds and resident memory from ``/proc``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mookti.redis import delete_prefix  # noqa: E402 - needs the repository on sys.path

HOST = "127.0.0.1"
UNLIMITED_MESSAGES = {f"MOOKTI_LIMIT_{kind}": str(10**9) for kind in ("GUEST", "FREE", "BASIC", "PRO")}


# --- a small keep-alive HTTP/1.1 client -------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}", "Accept: application/json"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        status = int((await self.reader.readline()).split()[1])
        reply_headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            reply_headers[name.strip().lower()] = value.strip()
        if "content-length" in reply_headers:
            data = await self.reader.readexactly(int(reply_headers["content-length"]))
        elif reply_headers.get("transfer-encoding") == "chunked":
            data = await self._chunked()
        else:
            data = b""
        if reply_headers.get("connection") == "close":
            await self.close()
        return Reply(status, reply_headers, data)

    async def _chunked(self) -> bytes:
        chunks = []
        while size := int((await self.reader.readline()).strip(), 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readline()
        await self.reader.readline()
        return b"".join(chunks)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def expect(reply: Reply, status: int, what: str) -> Any:
    if reply.status != status:
        raise SystemExit(f"{what}: HTTP {reply.status} {reply.body[:500]!r}")
    return reply.json()


async def create_user(
    connection: Connection, server: Server, label: str, number: int, **fields: Any
) -> tuple[str, str]:
    """A new user through the service key, and a token for it: (user id, token)."""
    service = {"Authorization": f"Bearer {server.service_key}"}
    body = {"email": f"{label}-{number}-{uuid.uuid4().hex[:8]}@example.com", **fields}
    created = expect(await connection.request("POST", "/api/storage/user", body, service), 201, "user")
    token = expect(
        await connection.request("POST", "/api/storage/token", {"userId": created["id"]}, service), 201, "token"
    )
    return created["id"], token["token"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


# --- the server ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


async def wait_healthy(
    process: subprocess.Popen, port: int, timeout: float, what: str, log: Path | None = None
) -> None:
    """Until ``GET /api/health/`` on ``port`` answers 200; SystemExit (with the log) if ``process``
    exits or ``timeout`` seconds pass first."""
    tail = (lambda: f":\n{log.read_text()}") if log else (lambda: "")
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited ({process.returncode}){tail()}")
        try:
            connection = Connection(port)
            reply = await connection.request("GET", "/api/health/")
            await connection.close()
            if reply.status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not answer in {timeout:.0f}s{tail()}")
        await asyncio.sleep(0.1)


@dataclass
class Server:
    port: int
    prefix: str
    service_key: str
    redis_url: str
    cluster: bool
    env: dict[str, str]
    process: subprocess.Popen
    log: Path

    @classmethod
    def start(
        cls,
        workers: int,
        redis_url: str,
        data_dir: Path,
        *,
        supervised: bool = False,
        indexers: int = 0,
        settings_module: str = "bench.settings",
        rate_limits: bool = False,
        cluster: bool | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Server:
        """Start the service; ``supervised`` runs ``manage.py serve`` (``workers`` web processes and
        ``indexers`` run_indexer processes), else a bare uvicorn. Without ``rate_limits`` the
        message limits are lifted (the benchmarks measure throughput, not the quota). ``cluster``
        defaults to the caller's ``REDIS_CLUSTER``."""
        if cluster is None:
            cluster = os.environ.get("REDIS_CLUSTER", "").strip().lower() in ("true", "on", "ok", "y", "yes", "1")
        port, prefix = free_port(), f"mookti-bench:{uuid.uuid4().hex[:12]}:"
        service_key = secrets.token_urlsafe(32)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain HTTP on the loopback (production: behind TLS)
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost",
            "REDIS_URL": redis_url,
            "REDIS_CLUSTER": "true" if cluster else "false",
            "MOOKTI_REDIS_PREFIX": prefix,
            "MOOKTI_SERVICE_KEY": service_key,
            "MOOKTI_DATA_DIR": str(data_dir),
            "MOOKTI_LOG_LEVEL": "WARNING",
            **({} if rate_limits else UNLIMITED_MESSAGES),
            **(extra_env or {}),
        }
        log = data_dir / ("serve.log" if supervised else "uvicorn.log")
        if supervised:
            argv = [sys.executable, str(ROOT / "manage.py"), "serve", "--host", HOST, "--port", str(port)]
            argv += ["--workers", str(workers), "--indexers", str(indexers), "--no-migrate"]
            argv += [] if indexers else ["--no-indexer"]
        else:
            argv = [sys.executable, "-m", "uvicorn", "mookti.asgi:application", "--host", HOST, "--port", str(port)]
            argv += ["--workers", str(workers), "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
        with log.open("w") as out:
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        return cls(port, prefix, service_key, redis_url, cluster, env, process, log)

    async def wait_ready(self, timeout: float = 120.0) -> None:
        await wait_healthy(self.process, self.port, timeout, "server", self.log)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (``serve`` forwards it to its children in order), SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def redis_client(self, *, raw: bool = False) -> redis.Redis | RedisCluster:
        """A client with str replies, or bytes ones (``raw``: binary values, e.g. event entries)."""
        if self.cluster:
            return RedisCluster.from_url(self.redis_url, decode_responses=not raw)
        return redis.Redis.from_url(self.redis_url, decode_responses=not raw)

    def delete_keys(self) -> int:
        """Every key under this run's prefix, and nothing else (the Redis may be shared)."""
        client = self.redis_client()
        try:
            return delete_prefix(self.prefix, client)
        finally:
            client.close()


# --- /proc --------------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def process_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, resident MB) of one process, from /proc."""
    fields = _stat_fields(pid)
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    return cpu, rss


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hertz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / hertz, sum(ticks[:8]) / hertz


def process_name(pid: int) -> str:
    """The command line of a process, space-separated."""
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue  # exited meanwhile
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found
