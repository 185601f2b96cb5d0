"""``make test``: the linters first, then make sure a Redis answers and Chromium is installed, run the
whole pytest suite, then the Redis-backed suites again on a real Redis Cluster.

- Linters (:data:`LINTERS`): ``ruff check``, ``ruff format --check`` and ``lint-imports`` (the import
  contracts in ``.importlinter``). The first that fails stops the run before any test, naming the
  command that reproduces it. ``MOOKTI_LINT=0`` skips them (e.g. while iterating on one test).

- Redis: the one at ``REDIS_URL`` (default redis://127.0.0.1:6379/0); if none answers, a local
  ``redis-server`` is started the way ``make run`` does (``mookti.localredis``) and stopped after.
- Browser tests drive Debian's ``chromium`` through the ``playwright`` package (never
  ``playwright install``): installed with apt-get when missing and running as root.
- Cluster pass: once the main run passed, ``scripts/redis-cluster.sh`` starts a 3-master cluster on
  free loopback ports and :data:`CLUSTER_SUITES` run against it (``REDIS_CLUSTER=true``); the
  channel layer stays on the standalone Redis (channels-redis has no cluster support). The cluster
  is stopped afterwards in every case. ``MOOKTI_CLUSTER_PASS``: ``auto`` (default: only for a full
  run, i.e. without extra arguments), ``1`` (always), ``0`` (never); ``MOOKTI_CLUSTER_ARGS``
  replaces the suites (pytest arguments, space-separated).
- pytest's exit code is passed on, except 5 ("no tests collected"), which is a failure here.

Extra arguments go to pytest: ``make test ARGS="tests/ops -x"``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mookti import localredis  # noqa: E402 - needs the repository on sys.path

NO_TESTS_COLLECTED = 5
# What runs again on Redis Cluster: everything that keeps data in Redis through the app's code.
CLUSTER_SUITES = ["tests/storage", "tests/search", "tests/gamification", "tests/migration", "tests/reliability"]
CLUSTER_SCRIPT = ROOT / "scripts" / "redis-cluster.sh"
# Cluster base ports are tried from here; each node also uses its port + 10000 (the cluster bus).
CLUSTER_PORTS = range(7200, 10000, 10)
# What must be clean before any test runs (CI runs this script): (what it checks, the command).
LINTERS = [
    ("lint (ruff check)", ["ruff", "check", "."]),
    ("formatting (ruff format --check; fix with ruff format)", ["ruff", "format", "--check", "."]),
    ("import contracts (lint-imports, see .importlinter)", ["lint-imports", "--no-cache"]),
]


def say(message: str) -> None:
    print(f"== {message}", flush=True)


def ensure_chromium() -> None:
    if shutil.which("chromium"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say("chromium is not installed (apt-get install chromium, as root): browser tests will fail")
        return
    say("installing Debian's chromium for the browser tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL)


def start_redis_if_needed(url: str) -> subprocess.Popen | None:
    if localredis.answers(url):
        say(f"using the Redis at {url}")
        return None
    data_dir = localredis.data_dir_from_env(ROOT)
    say(f"no Redis answers at {url}; starting redis-server in {data_dir}")
    return localredis.start(url, data_dir)


def run_linters() -> int:
    """Each linter in turn; the first failure stops here with the command to run again."""
    if os.environ.get("MOOKTI_LINT", "1").strip().lower() in ("0", "false", "no", "off"):
        say("linters skipped (MOOKTI_LINT=0)")
        return 0
    for what, command in LINTERS:
        executable = str(ROOT / ".venv" / "bin" / command[0])
        if subprocess.call([executable, *command[1:]], cwd=ROOT) != 0:
            say(f"FAILED: {what}. Run: .venv/bin/{' '.join(command)}")
            return 1
    say("linters passed: " + ", ".join(command[0] for _, command in LINTERS))
    return 0


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_base() -> int:
    """A base port whose three node ports and their bus ports (+10000) nobody listens on."""
    for base in CLUSTER_PORTS:
        if all(port_is_free(p) and port_is_free(p + 10000) for p in range(base, base + 3)):
            return base
    raise RuntimeError("no free ports for a Redis Cluster")


def wants_cluster_pass(pytest_args: list[str]) -> bool:
    setting = os.environ.get("MOOKTI_CLUSTER_PASS", "auto").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    return setting in ("1", "true", "yes", "on") or not pytest_args


def run_pytest(args: list[str], env: dict[str, str] | None = None) -> int:
    say("pytest " + " ".join(args))
    code = subprocess.call([str(ROOT / ".venv" / "bin" / "pytest"), *args], cwd=ROOT, env=env)
    if code == NO_TESTS_COLLECTED:
        say("pytest collected no tests: that is a failure")
        return 1
    return code


def cluster_pass(channel_url: str) -> int:
    """The Redis-backed suites on a fresh 3-master Redis Cluster (stopped afterwards, always)."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        say("the cluster pass needs redis-server and redis-cli (apt-get install redis-server)")
        return 1
    base = free_cluster_base()
    args = shlex.split(os.environ.get("MOOKTI_CLUSTER_ARGS", "")) or CLUSTER_SUITES
    started = time.monotonic()
    try:
        start = subprocess.run(
            [str(CLUSTER_SCRIPT), "start", str(base)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if start.returncode != 0:
            say(f"the Redis Cluster did not start on port {base}: {start.stderr.strip() or start.stdout.strip()}")
            return 1
        cluster_url = start.stdout.strip().splitlines()[-1]
        say(f"cluster pass: Redis Cluster at {cluster_url}, channel layer on {channel_url}")
        env = {**os.environ, "REDIS_URL": cluster_url, "REDIS_CLUSTER": "true", "CHANNEL_REDIS_URL": channel_url}
        code = run_pytest(args, env)
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(base)], cwd=ROOT, capture_output=True, check=False)
    say(f"cluster pass {'passed' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f}s")
    return code


def main(pytest_args: list[str]) -> int:
    if run_linters() != 0:
        return 1
    url = os.environ.get("REDIS_URL", localredis.DEFAULT_URL)
    ensure_chromium()
    redis_process = start_redis_if_needed(url)
    try:
        code = run_pytest(pytest_args)
        if code == 0 and wants_cluster_pass(pytest_args):
            code = cluster_pass(channel_url=os.environ.get("CHANNEL_REDIS_URL", url))
    finally:
        if redis_process is not None:
            localredis.stop(redis_process)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
