"""`manage.py serve` (what `make run` runs), as a real process tree: own Redis, uvicorn, signals.

Every run gets secrets in its environment (service key, Django secret key, an API key, a Redis
password where the test has one); the ``serve`` fixture fails the test if any of them shows up
in the run's output or in a log file under its data directory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
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


def production_env() -> dict[str, str]:
    return {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "prod-secret-" + secrets.token_urlsafe(32),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }


class Serve:
    """``manage.py serve --no-indexer`` on a free port with a data dir of its own."""

    def __init__(self, data_dir: Path, redis_url: str, env: dict[str, str], args: list[str]) -> None:
        self.port = free_port()
        self.redis_url = redis_url
        self.data_dir = data_dir
        full_env = {**os.environ, "REDIS_URL": redis_url, "MOOKTI_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        full_env["MOOKTI_SERVICE_KEY"] = "svc-secret-" + secrets.token_urlsafe(24)
        full_env["PINECONE_API_KEY"] = "pc-secret-" + secrets.token_urlsafe(24)  # alone it selects nothing
        for name in ("CHANNEL_REDIS_URL", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "DATABASE_URL"):
            full_env.pop(name, None)
        full_env.update(env)
        self.env = full_env
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-indexer", "--port", str(self.port), *args],
            cwd=ROOT,
            env={k: v for k, v in full_env.items() if v is not None},
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

    def secrets(self) -> list[str]:
        found = [self.env.get(n) for n in ("MOOKTI_SERVICE_KEY", "DJANGO_SECRET_KEY", "PINECONE_API_KEY")]
        found.append(urllib.parse.urlsplit(self.redis_url).password)
        return [s for s in found if s]

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=60) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def wait_for(self, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while self.output.count(text) < count:
            assert self.process.poll() is None or self.output.count(text) >= count, f"serve exited:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} in time:\n{self.output}"
            time.sleep(0.2)

    def wait_until_ready(self) -> None:
        self.wait_for("is running on")

    def child_pids(self, name: str) -> list[int]:
        return [int(pid) for pid in re.findall(rf"started {name} \(pid (\d+)\)", self.output)]

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
    """Start ``serve`` with ``serve(redis_url=None, env={}, args=[])``; every run is checked for secrets."""
    runs: list[Serve] = []

    def start(redis_url: str | None = None, env: dict[str, str] | None = None, args: list[str] = ()) -> Serve:
        url = redis_url or f"redis://127.0.0.1:{free_port()}/0"
        run = Serve(tmp_path / f"data{len(runs)}", url, env or {}, list(args))
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()
        run.reader.join(10)
        logs = [run.output] + [p.read_text(errors="replace") for p in run.data_dir.rglob("*.log")]
        for secret in run.secrets():
            assert not any(secret in text for text in logs), f"a secret was logged:\n{run.output}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    status = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1]
    return not status.startswith("Z")


def wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while any(pid_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, [pid for pid in pids if pid_alive(pid)]
        time.sleep(0.1)


def children_of(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


# --- development: a local Redis, supervision --------------------------------------------------------------
def test_development_starts_its_own_durable_redis_and_stops_everything_on_sigterm(serve):
    run = serve(redis_url=f"redis://:dev-redis-{secrets.token_hex(8)}@127.0.0.1:{free_port()}/0")
    run.wait_until_ready()
    status, body = run.get("/api/health/")
    assert (status, body["status"], body["checks"]["redis"]["ok"]) == (200, "ok", True)
    assert run.get("/api/health/live") == (200, {"status": "ok"})
    assert run.get("/api/health/ready")[0] == 200
    for path in ("/api/docs/", "/api/schema/", "/api/health/", "/admin/"):
        assert f"127.0.0.1:{run.port}{path}" in run.output
    assert "redis://:***@127.0.0.1" in run.output  # the URL is shown masked
    client = redis.Redis.from_url(run.redis_url, decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    client.close()
    assert (run.data_dir / "redis" / "appendonlydir").is_dir()
    assert (run.data_dir / "static" / "admin").is_dir()  # collectstatic ran
    (web,) = run.child_pids("web")

    run.process.send_signal(signal.SIGTERM)

    assert run.wait_exit() == 0, run.output
    assert not pid_alive(web)
    assert not localredis.answers(run.redis_url)
    assert "stopped redis-server (exit code 0)" in run.output


def test_development_without_a_service_key_creates_and_prints_one(serve):
    run = serve(env={"MOOKTI_SERVICE_KEY": None})
    run.wait_until_ready()
    key = (run.data_dir / "dev-service-key").read_text().strip()
    assert f"development service key (kept in {run.data_dir / 'dev-service-key'}): {key}" in run.output
    request = urllib.request.Request(
        f"http://127.0.0.1:{run.port}/api/storage/user/{secrets.token_hex(4)}",
        headers={"Authorization": f"Bearer {key}"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:  # an unknown user: the key itself is accepted
        urllib.request.urlopen(request, timeout=5)
    assert answer.value.code == 404


def test_a_killed_web_master_is_restarted_and_leaves_no_worker_behind(serve):
    """Issue 13: its uvicorn workers do not keep serving (and holding the port) after it died."""
    run = serve(args=["--workers", "2"])
    run.wait_until_ready()
    (master,) = run.child_pids("web")
    deadline = time.monotonic() + START_DEADLINE
    while len(children_of(master)) < 2:
        assert time.monotonic() < deadline, run.output
        time.sleep(0.1)
    workers = children_of(master)

    os.kill(master, signal.SIGKILL)

    run.wait_for("started web (pid", count=2)
    wait_gone(workers)
    assert f"web (pid {master}) exited with code -9" in run.output
    assert "restarting web in 1.0s (crash 1 of 4 allowed in a row)" in run.output
    deadline = time.monotonic() + START_DEADLINE
    while True:  # the new master got the port: the old workers had let it go
        try:
            if run.get("/api/health/live")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline and run.process.poll() is None, run.output
        time.sleep(0.2)
    assert run.process.poll() is None


def test_when_serve_is_killed_its_children_die_too(serve):
    run = serve()
    run.wait_until_ready()
    (web,) = run.child_pids("web")
    (redis_server,) = run.child_pids("redis-server")
    workers = children_of(web)

    run.process.kill()

    wait_gone([web, redis_server, *workers])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", run.port))  # the port is free again


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
    supervisor = Supervisor()
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


def test_only_repeated_fast_crashes_stop_the_supervisor(tmp_path, caplog):
    """A crashing child is restarted with growing delays; the third fast crash in a row gives up."""
    starts = tmp_path / "starts"
    crash = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    supervisor = Supervisor(backoff=0.05, fast=60, max_crashes=3)
    supervisor.spawn("indexer-1", [sys.executable, "-c", crash])
    with caplog.at_level(logging.INFO, logger="mookti.serve"):
        assert supervisor.wait() == 1
    assert starts.read_text() == "xxx"
    assert "restarting indexer-1 in 0.1s (crash 1 of 2 allowed in a row)" in caplog.text
    assert "restarting indexer-1 in 0.1s (crash 2 of 2 allowed in a row)" in caplog.text
    assert "indexer-1 crashed 3 times in a row" in caplog.text


def test_a_child_that_ran_long_enough_starts_a_new_crash_count(tmp_path, caplog):
    """Not fast: a crash after ``fast`` seconds of running is crash 1 again, never a reason to stop."""
    crash = "import time; time.sleep(0.3); raise SystemExit(3)"
    supervisor = Supervisor(backoff=0.05, fast=0.1, max_crashes=2)
    child = supervisor.spawn("indexer-1", [sys.executable, "-c", crash])
    with caplog.at_level(logging.INFO, logger="mookti.serve"):
        deadline = time.monotonic() + START_DEADLINE
        while caplog.text.count("exited with code 3") < 3:
            assert supervisor.tick(), caplog.text
            assert time.monotonic() < deadline
            time.sleep(0.05)
    supervisor.stop_all()
    assert child.crashes == 1
    assert "crashed" not in caplog.text


def test_redis_warnings_check_the_redis_in_use(settings):
    """The shared test Redis is whatever the machine runs: the check returns a list either way."""
    warnings = redis_warnings()
    assert all(isinstance(w, str) for w in warnings)


# --- production: clear failures, never a local Redis -------------------------------------------------------
def assert_fails(run: Serve, message: str) -> None:
    assert run.wait_exit() != 0, run.output
    assert message in run.output, run.output
    assert "Traceback" not in run.output
    assert "is running on" not in run.output
    assert "starting redis-server" not in run.output
    assert not (run.data_dir / "redis").exists()


def test_production_never_starts_a_local_redis_for_a_closed_port(serve):
    port = free_port()
    run = serve(redis_url=f"redis://127.0.0.1:{port}/0", env=production_env())
    assert_fails(
        run,
        f"Redis at redis://127.0.0.1:{port}/0 is unreachable: connection refused: nothing listens on that port "
        "(serve starts a local Redis only with DJANGO_DEBUG=1 or --local-redis)",
    )
    assert not localredis.answers(run.redis_url)


@pytest.fixture
def protected_redis(tmp_path):
    """A real redis-server that wants a password."""
    password = "right-" + secrets.token_hex(8)
    url = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    process = localredis.start(url, tmp_path / "protected")
    yield url
    localredis.stop(process)


def test_a_wrong_password_is_named_as_such_and_not_shown(serve, protected_redis):
    wrong = protected_redis.replace(":right-", ":wrong-")
    run = serve(redis_url=wrong, env=production_env())
    port = urllib.parse.urlsplit(wrong).port
    assert_fails(
        run,
        f"Redis at redis://:***@127.0.0.1:{port}/0 is unreachable: "
        "authentication failed: the password (or user) in the URL is wrong",
    )


def test_a_missing_password_is_named_as_such(serve, protected_redis):
    """Even in development: something listens there, so no local Redis is started over it."""
    port = urllib.parse.urlsplit(protected_redis).port
    run = serve(redis_url=f"redis://127.0.0.1:{port}/0", args=["--local-redis"])
    assert_fails(run, "authentication failed: the server requires a password and the URL has none")


CERT_SUBJECT = ["-days", "2", "-subj", "/CN=localhost"]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A TLS-only redis-server with a self-signed certificate (CN=localhost)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, *CERT_SUBJECT],
        check=True,
        capture_output=True,
    )
    port = free_port()
    tls = ["--tls-ca-cert-file", cert, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--tls-cert-file", cert, "--tls-key-file", key, *tls],
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    client = redis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=str(cert))
    deadline = time.monotonic() + START_DEADLINE
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    client.close()
    yield port
    localredis.stop(process)


def test_plain_redis_url_against_a_tls_endpoint(serve, tls_redis):
    run = serve(redis_url=f"redis://localhost:{tls_redis}/0", env=production_env())
    assert_fails(run, "the server closed the connection: it probably expects TLS (use rediss://)")


def test_tls_url_against_a_plain_endpoint(serve):
    shared = os.environ.get("REDIS_URL", localredis.DEFAULT_URL)
    parts = urllib.parse.urlsplit(shared)
    run = serve(redis_url=f"rediss://{parts.hostname}:{parts.port or 6379}/0", env=production_env())
    assert_fails(run, "TLS handshake failed: the server probably does not speak TLS there")


def test_an_untrusted_certificate_is_named(serve, tls_redis):
    run = serve(redis_url=f"rediss://localhost:{tls_redis}/0", env=production_env())
    assert_fails(run, "TLS certificate not trusted (unknown CA or wrong host name)")


def test_a_port_in_use_is_reported_before_anything_starts(serve):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = serve(args=["--port", str(port)])  # the last --port wins
        assert_fails(run, f"cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "using the Redis" not in run.output


def test_a_missing_secret_key_is_one_line(serve):
    env = {**production_env(), "DJANGO_SECRET_KEY": None}
    run = serve(env=env)
    assert_fails(run, "configuration error: DJANGO_SECRET_KEY must be set")


def test_a_bad_database_url_is_one_line_with_the_password_masked(serve):
    password = "db-secret-" + secrets.token_hex(8)
    run = serve(env={**production_env(), "DATABASE_URL": f"mysqlx://app:{password}@db.example.com/staff"})
    assert_fails(run, "configuration error: DATABASE_URL 'mysqlx://app:***@db.example.com/staff' names no known")
    assert password not in run.output


def test_an_unreachable_database_is_one_line(serve):
    password = "db-secret-" + secrets.token_hex(8)
    url = f"postgres://app:{password}@127.0.0.1:{free_port()}/staff"
    shared = os.environ.get("REDIS_URL", localredis.DEFAULT_URL)
    run = serve(redis_url=shared, env={**production_env(), "DATABASE_URL": url})
    assert_fails(run, "the staff database (postgresql at 127.0.0.1) is unreachable")
    assert password not in run.output


def test_production_start_warns_without_a_service_key_logs_json_and_health_skips_the_ssl_redirect(serve):
    shared = os.environ.get("REDIS_URL", localredis.DEFAULT_URL)
    run = serve(redis_url=shared, env={**production_env(), "MOOKTI_SERVICE_KEY": None, "MOOKTI_LOG_JSON": "1"})
    run.wait_until_ready()
    assert "MOOKTI_SERVICE_KEY is not set: server-to-server calls" in run.output
    assert f"using the Redis at {shared}" in run.output
    assert run.get("/api/health/live") == (200, {"status": "ok"})  # plain HTTP: exempt from the redirect
    request = urllib.request.Request(f"http://127.0.0.1:{run.port}/api/schema/", method="HEAD")
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(request, timeout=5)
    assert answer.value.code == 301 and answer.value.headers["Location"].startswith("https://")
    assert not (run.data_dir / "dev-service-key").exists()
    run.process.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0, run.output
    entries = [json.loads(line) for line in run.lines]  # one format: serve's and uvicorn's lines alike
    assert {"mookti.serve", "uvicorn.error", "uvicorn.access"} <= {entry["logger"] for entry in entries}
    assert all(entry.keys() >= {"time", "level", "logger", "message"} for entry in entries)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
