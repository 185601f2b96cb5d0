"""``manage.py serve``: the whole service on one machine (what ``make run`` runs).

Starts a local Redis if ``REDIS_URL`` does not answer (AOF on, noeviction, data under
``<MOOKTI_DATA_DIR>/redis``), checks the Redis in use against production guidance, creates
Django's staff tables, then supervises the ASGI server (uvicorn: HTTP + websockets) and the
search indexer (``run_indexer``, when that command exists). SIGINT/SIGTERM are forwarded to
every child; when one child dies the others are stopped too and the exit code says so.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from mookti import localredis
from mookti.redis import get_redis, is_cluster

logger = logging.getLogger("mookti.serve")

STOP_TIMEOUT = 20.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def redis_warnings() -> list[str]:
    """Production guidance for every primary of the Redis in use (see ``localredis.config_warnings``)."""
    client = get_redis()
    if not is_cluster():
        return localredis.config_warnings(client)
    found = []
    for node in client.get_primaries():
        found += [f"{node.name}: {w}" for w in localredis.config_warnings(node.redis_connection)]
    return found


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor itself is killed (Linux), so nothing is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    stopping: bool = False


class Supervisor:
    """Start children, wait until one exits or a signal arrives, then stop them all (newest first)."""

    def __init__(self, stdout) -> None:
        self.children: list[Child] = []
        self.stdout = stdout
        self.signalled: int | None = None

    def spawn(self, name: str, argv: list[str], **popen) -> Child:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C reaches only us; we stop children in order
            preexec_fn=_die_with_parent,
            **popen,
        )
        child = Child(name, process)
        self.children.append(child)
        self.stdout.write(f"started {name} (pid {process.pid})")
        return child

    def adopt(self, name: str, process: subprocess.Popen) -> None:
        self.children.append(Child(name, process))

    def on_signal(self, signum: int, frame) -> None:
        self.signalled = signum

    def first_exit(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                return child
        return None

    def wait(self) -> int:
        """Block until a child exits (exit code 1) or a signal was trapped (exit code 0); stop all."""
        try:
            while self.signalled is None:
                dead = self.first_exit()
                if dead is not None:
                    self.stdout.write(f"{dead.name} exited with code {dead.process.returncode}; stopping the rest")
                    return 1
                time.sleep(0.2)
            self.stdout.write(f"got {signal.Signals(self.signalled).name}; stopping")
            return 0
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        """SIGTERM newest first (web and indexer before the Redis they use), SIGKILL after a timeout."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
                try:
                    child.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.stdout.write(f"{child.name} did not stop in {STOP_TIMEOUT:.0f}s; killing it")
                    child.process.kill()
                    child.process.wait()
            self.stdout.write(f"stopped {child.name} (exit code {child.process.returncode})")


def wait_for_port(host: str, port: int, supervisor: Supervisor, timeout: float = 120.0) -> bool:
    """True once ``host:port`` accepts connections; False if a child died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and supervisor.first_exit() is None and supervisor.signalled is None:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = "Run the service: local Redis if needed, staff tables, ASGI server (HTTP + websockets) and indexer."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("MOOKTI_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("MOOKTI_PORT", "8000")))
        parser.add_argument(
            "--workers", type=int, default=int(os.environ.get("MOOKTI_WEB_WORKERS", "1")), help="web processes"
        )
        parser.add_argument(
            "--indexers", type=int, default=int(os.environ.get("MOOKTI_INDEXERS", "1")), help="indexer processes"
        )
        parser.add_argument("--no-indexer", action="store_true", help="do not start run_indexer")
        parser.add_argument("--no-migrate", action="store_true", help="skip creating Django's staff tables")

    def handle(self, *args, **options) -> None:
        supervisor = Supervisor(self.stdout)
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        try:
            # While starting (Redis may be loading its AOF), a signal stops what was started so far.
            for sig in SIGNALS:
                signal.signal(sig, self._interrupted)
            try:
                self.start_all(supervisor, options)
            except KeyboardInterrupt:
                supervisor.stop_all()
                raise CommandError("interrupted while starting", returncode=130) from None
            except BaseException:
                supervisor.stop_all()
                raise
            for sig in SIGNALS:
                signal.signal(sig, supervisor.on_signal)
            if wait_for_port(options["host"], options["port"], supervisor):
                self.print_urls(options["host"], options["port"])
            code = supervisor.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if code:
            raise CommandError("a child process exited; everything was stopped", returncode=code)

    def start_all(self, supervisor: Supervisor, options) -> None:
        self.start_redis(supervisor)
        if not options["no_migrate"]:
            Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write("staff database ready (Django's auth/admin tables)")
        # static files for the admin and the API docs (whitenoise serves them; issue 14)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write(f"static files collected in {settings.STATIC_ROOT}")
        self.start_web(supervisor, options)
        self.start_indexers(supervisor, options)

    @staticmethod
    def _interrupted(signum: int, frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def start_redis(self, supervisor: Supervisor) -> None:
        url = settings.REDIS_URL
        if localredis.answers(url):
            self.stdout.write(f"using the Redis at {url}")
        elif settings.REDIS_CLUSTER:
            raise CommandError(f"Redis cluster at {url} does not answer.")
        else:
            data_dir = Path(settings.DATA_DIR) / "redis"
            self.stdout.write(f"no Redis answers at {url}; starting redis-server (AOF, noeviction) in {data_dir}")
            try:
                process = localredis.start(url, data_dir, start_new_session=True, preexec_fn=_die_with_parent)
            except localredis.LocalRedisError as exc:
                raise CommandError(str(exc)) from None
            supervisor.adopt("redis-server", process)
            self.stdout.write(f"started redis-server (pid {process.pid}, log {data_dir / 'redis.log'})")
        for warning in redis_warnings():
            logger.warning(warning)

    def start_web(self, supervisor: Supervisor, options) -> None:
        argv = [sys.executable, "-m", "uvicorn", "mookti.asgi:application"]
        argv += ["--host", options["host"], "--port", str(options["port"]), "--workers", str(options["workers"])]
        argv += ["--lifespan", "off", "--timeout-graceful-shutdown", "10", "--app-dir", str(settings.BASE_DIR)]
        supervisor.spawn("web", argv, cwd=settings.BASE_DIR)

    def start_indexers(self, supervisor: Supervisor, options) -> None:
        if options["no_indexer"] or options["indexers"] < 1:
            return
        if "run_indexer" not in get_commands():
            self.stdout.write("no run_indexer command yet: search indexing is not started")
            return
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        for number in range(options["indexers"]):
            supervisor.spawn(f"indexer-{number + 1}", [sys.executable, manage, "run_indexer"], cwd=settings.BASE_DIR)

    def print_urls(self, host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}"
        self.stdout.write(
            self.style.SUCCESS(f"Mookti storage is running on {base}")
            + "\n"
            + "\n".join(
                [
                    f"  API docs     {base}/api/docs/",
                    f"  API schema   {base}/api/schema/",
                    f"  health       {base}/api/health/",
                    f"  admin        {base}/admin/  (staff user: .venv/bin/python manage.py createsuperuser)",
                    f"  websockets   {base.replace('http', 'ws', 1)}/ws/events/",
                    "Ctrl-C stops everything.",
                ]
            )
        )
