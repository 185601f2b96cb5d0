"""A local Redis for development and tests: started only when ``REDIS_URL`` does not answer.

Used by ``manage.py serve`` (``make run``) and ``scripts/run_tests.py`` (``make test``). The
server it starts keeps its data under ``<MOOKTI_DATA_DIR>/redis`` with the settings Redis needs
as a system of record: AOF on (fsync every second) and ``noeviction`` (a full Redis refuses
writes instead of silently dropping data). :func:`config_warnings` checks any Redis for the same.

No Django import here: the test runner uses this before Django is set up.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# What a system-of-record Redis needs; also what `config_warnings` checks for.
DURABLE_SETTINGS = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
}
# Memory: a chat's messages are one hash, a message's value holds its text; a hash with a value
# above hash-max-listpack-value (64 bytes by default) or more fields than hash-max-listpack-entries
# (128) becomes a hashtable, about 50 bytes more per field. The entries limit is a trade: a field
# read in a listpack scans it (about 7 ns per field on the server), so a page of 100 messages from
# a 256-message chat costs about 0.17 ms of Redis time instead of 0.01 ms; longer chats turn into
# hashtables and stay fast (docs/operations.md has the measurements).
# A stream's newest node preallocates stream-node-max-bytes (4096 by default, up to 4096): most users'
# event streams hold tens to hundreds of small entries, so 2048 halves what that costs a short one
# for about the same size of a long one (more nodes; bench/memory.py, docs/benchmarks.md).
COMPACT_SETTINGS = {
    "hash-max-listpack-value": "8192",
    "hash-max-listpack-entries": "256",
    "stream-node-max-bytes": "2048",
}


class LocalRedisError(RuntimeError):
    """The local Redis could not be started (or must not be, e.g. a remote URL)."""


def answers(url: str, timeout: float = 1.0) -> bool:
    """True if a Redis at ``url`` replies to PING."""
    return probe(url, timeout) is None


def probe(url: str, timeout: float = 2.0) -> str | None:
    """None if a Redis at ``url`` replies to PING, else the likely cause in words (never the password)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return explain(exc, url)
    finally:
        client.close()


def explain(exc: BaseException, url: str) -> str:
    """What an operator should check, from the error chain of a failed connection to ``url``."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(str(e) for e in chain)
    tls = urlsplit(url).scheme == "rediss"
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return "TLS certificate not trusted (unknown CA or wrong host name): " + _first_line(chain[-1])
    if isinstance(chain[0], redis.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        if urlsplit(url).password or "invalid username-password" in text:
            return "authentication failed: the password (or user) in the URL is wrong"
        return "authentication failed: the server requires a password and the URL has none"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "the host name does not resolve (DNS)"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused: nothing listens on that port"
    if tls and any(isinstance(e, (ssl.SSLError, TimeoutError, socket.timeout)) for e in chain):
        return "TLS handshake failed: the server probably does not speak TLS there (use redis://, or check the port)"
    closed = any(isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in chain) or "closed by server" in text
    if closed and not tls:
        return "the server closed the connection: it probably expects TLS (use rediss://)"
    if any(isinstance(e, (TimeoutError, socket.timeout, redis.TimeoutError)) for e in chain):
        return "timed out: a firewall, a wrong host, or a server that expects TLS (rediss://)"
    return f"{type(chain[0]).__name__}: {_first_line(chain[0])}"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def server_args(url: str, data_dir: Path) -> list[str]:
    """The ``redis-server`` command line for ``url`` (host, port, password) keeping data in ``data_dir``."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or (parts.hostname or "127.0.0.1") not in LOCAL_HOSTS:
        raise LocalRedisError(f"{url} does not answer, and only a local redis:// URL can be started here.")
    host = parts.hostname or "127.0.0.1"
    args = ["--port", str(parts.port or 6379), "--bind", host, "--dir", str(data_dir)]
    args += ["--daemonize", "no", "--logfile", str(data_dir / "redis.log"), "--protected-mode", "yes"]
    for name, value in {**DURABLE_SETTINGS, **COMPACT_SETTINGS}.items():
        args += [f"--{name}", value]
    if parts.password:
        args += ["--requirepass", parts.password]
    return args


def start(url: str, data_dir: Path, *, timeout: float = 30.0, **popen: object) -> subprocess.Popen:
    """Start ``redis-server`` for ``url`` in the foreground (a child process) and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise LocalRedisError(f"{url} does not answer and no redis-server binary is installed.")
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, *server_args(url, data_dir)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **popen
    )
    deadline = time.monotonic() + timeout
    while not answers(url, timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise LocalRedisError(f"redis-server did not start; see {data_dir / 'redis.log'}:\n{log_tail(data_dir)}")
        time.sleep(0.1)
    return process


def stop(process: subprocess.Popen, timeout: float = 30.0) -> int | None:
    """SIGTERM (Redis flushes its AOF and exits), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def log_tail(data_dir: Path, lines: int = 20) -> str:
    try:
        return "\n".join((data_dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def config_warnings(client: redis.Redis) -> list[str]:
    """Production guidance for the Redis in use: persistence on, nothing evicted, compact encodings.

    Managed services often disable CONFIG; that is reported too (check it in their console).
    """
    try:
        raw = client.config_get("*")
    except redis.RedisError as exc:
        return [f"cannot read the Redis configuration ({exc}); make sure it persists data (AOF) and uses noeviction"]
    config = {_text(name): _text(value) for name, value in raw.items()}
    found: list[str] = []
    if config.get("appendonly") != "yes":
        snapshots = f"only RDB snapshots ({config['save']!r})" if config.get("save") else "nothing"
        found.append(
            f"Redis persistence is off: appendonly={config.get('appendonly')!r}, {snapshots} kept on disk; "
            "a restart loses data. Use appendonly yes (appendfsync everysec)."
        )
    policy = config.get("maxmemory-policy")
    if policy != "noeviction":
        found.append(
            f"Redis maxmemory-policy is {policy!r}: keys (i.e. application data) can be evicted when memory "
            "runs out. Use noeviction."
        )
    costs = {
        "hash-max-listpack-value": "each message of a chat with a long one takes about 50 bytes more than needed",
        "hash-max-listpack-entries": "chats with more messages than that (and the message lookups once there are "
        "more than about 200 per bucket) take about 50 bytes more per message",
    }
    for name, cost in costs.items():
        compact = int(COMPACT_SETTINGS[name])
        if int(config.get(name) or compact) < compact:
            found.append(f"Redis {name} is {config[name]}: {cost}. Set it to {compact} (see docs/operations.md).")
    node_bytes = int(COMPACT_SETTINGS["stream-node-max-bytes"])
    if int(config.get("stream-node-max-bytes") or node_bytes) not in range(1, node_bytes + 1):  # 0: 4096
        found.append(
            f"Redis stream-node-max-bytes is {config.get('stream-node-max-bytes')}: each user's event stream "
            f"preallocates up to 4 KB. Set it to {node_bytes} (see docs/operations.md)."
        )
    return found


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def data_dir_from_env(base: Path) -> Path:
    """``<MOOKTI_DATA_DIR>/redis``; ``MOOKTI_DATA_DIR`` defaults to ``<repo>/var`` as in settings."""
    return Path(os.environ.get("MOOKTI_DATA_DIR") or base / "var") / "redis"
