"""``manage.py serve``: the whole service on one machine (what ``make run`` runs).

Start-up refuses to fool an operator: a port in use, an unreachable Redis (with the likely
cause: refused, DNS, TLS, authentication) or an unreachable staff database stop it with one clear
line and a non-zero exit, before any banner. A local Redis (AOF on, noeviction, data under
``<MOOKTI_DATA_DIR>/redis``) is started only in development (``DJANGO_DEBUG`` on, or
``--local-redis``, which ``make run`` passes) and only when nothing listens at ``REDIS_URL``.

Then it creates Django's staff tables, collects static files and supervises the ASGI server
(uvicorn: HTTP + websockets) and the search indexer. A child that dies is restarted with backoff;
only repeated fast crashes stop the service. Every child runs in its own process group, gets
SIGTERM if ``serve`` itself dies (PR_SET_PDEATHSIG), and its group is swept when it exits, so no
uvicorn worker outlives its master. SIGINT/SIGTERM stop everything, newest first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError

from mookti import localredis
from mookti.logs import logging_config, mask_url, redact
from mookti.redis import get_redis, is_cluster

logger = logging.getLogger("mookti.serve")

STOP_TIMEOUT = 20.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEV_KEY_FILE = "dev-service-key"


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


def popen_child(argv: list[str], **popen) -> subprocess.Popen:
    """A child in its own process group (a terminal's Ctrl-C reaches only ``serve``) that dies with it."""
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent, **popen
    )


def sweep_group(pid: int) -> None:
    """SIGKILL whatever is left in a child's process group (e.g. uvicorn workers of a killed master)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Child:
    """One supervised process and its crash history (a crash is an exit soon after a start)."""

    name: str
    launch: Callable[[], subprocess.Popen]
    process: subprocess.Popen | None = None
    started: float = 0.0
    crashes: int = 0
    restart_at: float = 0.0


class Supervisor:
    """Start children, restart the ones that die (with backoff), stop them all (newest first).

    A child that exits within ``fast`` seconds of its start crashed fast; ``max_crashes`` fast
    crashes in a row stop the service. Delays double from ``backoff`` up to ``backoff_max``.
    """

    def __init__(
        self, *, backoff: float = 1.0, backoff_max: float = 30.0, fast: float = 30.0, max_crashes: int = 5
    ) -> None:
        self.children: list[Child] = []
        self.signalled: int | None = None
        self.backoff, self.backoff_max, self.fast, self.max_crashes = backoff, backoff_max, fast, max_crashes

    def spawn(self, name: str, argv: list[str], **popen) -> Child:
        return self.add(name, lambda: popen_child(argv, **popen))

    def add(self, name: str, launch: Callable[[], subprocess.Popen]) -> Child:
        child = Child(name, launch)
        self.children.append(child)
        self._launch(child)
        return child

    def _launch(self, child: Child) -> None:
        child.process = child.launch()
        child.started = time.monotonic()
        logger.info("started %s (pid %d)", child.name, child.process.pid)

    def on_signal(self, signum: int, frame) -> None:
        self.signalled = signum

    def tick(self) -> bool:
        """Restart dead children whose delay is over; False once one crashed too often."""
        now = time.monotonic()
        for child in self.children:
            if child.process is None:
                if now >= child.restart_at:
                    try:
                        self._launch(child)
                    except Exception as exc:  # e.g. the local Redis did not come up: counts as a crash
                        logger.error("%s did not start: %s", child.name, redact(str(exc)))
                        if not self._schedule(child, now, ran=0.0):
                            return False
                continue
            code = child.process.poll()
            if code is None:
                if child.crashes and now - child.started >= self.fast:
                    child.crashes = 0  # it ran long enough: the next exit starts a new count
                continue
            sweep_group(child.process.pid)
            ran = now - child.started
            logger.warning("%s (pid %d) exited with code %s after %.1fs", child.name, child.process.pid, code, ran)
            child.process = None
            if not self._schedule(child, now, ran):
                return False
        return True

    def _schedule(self, child: Child, now: float, ran: float) -> bool:
        child.crashes = child.crashes + 1 if ran < self.fast else 1
        if child.crashes >= self.max_crashes:
            logger.error(
                "%s crashed %d times in a row, each within %.0fs of its start; stopping the service",
                child.name,
                child.crashes,
                self.fast,
            )
            return False
        delay = min(self.backoff_max, self.backoff * 2 ** (child.crashes - 1))
        child.restart_at = now + delay
        logger.warning(
            "restarting %s in %.1fs (crash %d of %d allowed in a row)",
            child.name,
            delay,
            child.crashes,
            self.max_crashes - 1,
        )
        return True

    def wait(self, poll: Callable[[], None] | None = None) -> int:
        """Supervise until a signal (exit code 0) or a child crashing too often (exit code 1); stop all."""
        try:
            while self.signalled is None:
                if not self.tick():
                    return 1
                if poll is not None:
                    poll()
                time.sleep(0.2)
            logger.info("got %s; stopping", signal.Signals(self.signalled).name)
            return 0
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        """SIGTERM newest first (web and indexer before the Redis they use), SIGKILL after a timeout."""
        for child in reversed(self.children):
            process = child.process
            if process is None:
                continue
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    logger.warning("%s did not stop in %.0fs; killing it", child.name, STOP_TIMEOUT)
                    process.kill()
                    process.wait()
            sweep_group(process.pid)
            logger.info("stopped %s (exit code %s)", child.name, process.returncode)


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served (in use, no such address), or None if it is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn sets too
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def accepts(host: str, port: int) -> bool:
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        with socket.create_connection((connect_host, port), timeout=1):
            return True
    except OSError:
        return False


def dev_service_key(data_dir: Path) -> str:
    """The development service key kept in ``<data dir>/dev-service-key`` (created on first use)."""
    path = data_dir / DEV_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "dev-" + secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


class Command(BaseCommand):
    help = "Run the service: checks, staff tables, static files, ASGI server (HTTP + websockets) and indexer."

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
        parser.add_argument(
            "--local-redis",
            action="store_true",
            help="start a local redis-server when nothing listens at REDIS_URL (implied by DJANGO_DEBUG)",
        )

    def handle(self, *args, **options) -> None:
        problem = port_in_use(options["host"], options["port"])
        if problem:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {problem} "
                "(another serve or server? stop it or choose --port / MOOKTI_PORT)"
            )
        supervisor = Supervisor()
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
            code = supervisor.wait(self._banner_once(options["host"], options["port"]))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if code:
            raise CommandError("a child process kept crashing; everything was stopped", returncode=code)

    def start_all(self, supervisor: Supervisor, options) -> None:
        development = settings.DEBUG or options["local_redis"]
        self.start_redis(supervisor, development)
        if not options["no_migrate"]:
            self.migrate()
        call_command("collectstatic", interactive=False, verbosity=0)
        env = {**os.environ, **self.service_key_env(development)}
        self.start_web(supervisor, options, env)
        self.start_indexers(supervisor, options, env)

    @staticmethod
    def _interrupted(signum: int, frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def start_redis(self, supervisor: Supervisor, development: bool) -> None:
        url = settings.REDIS_URL
        cause = localredis.probe(url)
        if cause is None:
            logger.info("using the Redis at %s", mask_url(url))
        elif development and not settings.REDIS_CLUSTER and cause.startswith("connection refused"):
            self.start_local_redis(supervisor, url)
        else:
            hint = "" if development else " (serve starts a local Redis only with DJANGO_DEBUG=1 or --local-redis)"
            kind = "Redis cluster" if settings.REDIS_CLUSTER else "Redis"
            raise CommandError(f"{kind} at {mask_url(url)} is unreachable: {cause}{hint}")
        for warning in redis_warnings():
            logger.warning(warning)

    def start_local_redis(self, supervisor: Supervisor, url: str) -> None:
        data_dir = Path(settings.DATA_DIR) / "redis"
        logger.info("nothing listens at %s; starting redis-server (AOF, noeviction) in %s", mask_url(url), data_dir)

        def launch() -> subprocess.Popen:
            return localredis.start(url, data_dir, start_new_session=True, preexec_fn=_die_with_parent)

        try:
            supervisor.add("redis-server", launch)
        except localredis.LocalRedisError as exc:
            raise CommandError(redact(str(exc))) from None
        logger.info("redis-server log: %s", data_dir / "redis.log")

    def migrate(self) -> None:
        Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
        database = settings.DATABASES["default"]
        try:
            call_command("migrate", interactive=False, verbosity=0)
        except DatabaseError as exc:
            where = f"{database['ENGINE'].rsplit('.', 1)[-1]} at {database.get('HOST') or database.get('NAME')}"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"the staff database ({where}) is unreachable: {redact(first)}") from None
        logger.info("staff database ready (Django's auth/admin tables)")

    def service_key_env(self, development: bool) -> dict[str, str]:
        """A development service key when none is set; a warning in production."""
        if settings.MOOKTI_SERVICE_KEY:
            return {}
        if not development:
            logger.warning(
                "MOOKTI_SERVICE_KEY is not set: server-to-server calls (the webapp backend acting for a user "
                "through X-Mookti-User) are off"
            )
            return {}
        path = Path(settings.DATA_DIR) / DEV_KEY_FILE
        key = dev_service_key(Path(settings.DATA_DIR))
        logger.info("development service key (kept in %s): %s", path, key)
        return {"MOOKTI_SERVICE_KEY": key}

    def start_web(self, supervisor: Supervisor, options, env: dict[str, str]) -> None:
        log_config = Path(settings.DATA_DIR) / "uvicorn-logging.json"
        log_config.write_text(json.dumps(logging_config()))
        graceful = os.environ.get("MOOKTI_GRACEFUL_TIMEOUT", "10")
        argv = [sys.executable, "-m", "uvicorn", "mookti.asgi:application"]
        argv += ["--host", options["host"], "--port", str(options["port"]), "--workers", str(options["workers"])]
        argv += ["--lifespan", "off", "--timeout-graceful-shutdown", graceful, "--app-dir", str(settings.BASE_DIR)]
        argv += ["--log-config", str(log_config)]
        supervisor.spawn("web", argv, cwd=settings.BASE_DIR, env=env)

    def start_indexers(self, supervisor: Supervisor, options, env: dict[str, str]) -> None:
        if options["no_indexer"] or options["indexers"] < 1:
            return
        if "run_indexer" not in get_commands():
            logger.info("no run_indexer command: search indexing is not started")
            return
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        for number in range(options["indexers"]):
            argv = [sys.executable, manage, "run_indexer"]
            supervisor.spawn(f"indexer-{number + 1}", argv, cwd=settings.BASE_DIR, env=env)

    def _banner_once(self, host: str, port: int) -> Callable[[], None]:
        """A poll for the supervisor: print the URLs once the server accepts connections."""
        shown = False

        def poll() -> None:
            nonlocal shown
            if not shown and accepts(host, port):
                shown = True
                self.print_urls(host, port)

        return poll

    def print_urls(self, host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}"
        logger.info(
            "\n".join(
                [
                    f"Mookti storage is running on {base}",
                    f"  API docs     {base}/api/docs/",
                    f"  API schema   {base}/api/schema/",
                    f"  health       {base}/api/health/  (live: /api/health/live, ready: /api/health/ready)",
                    f"  admin        {base}/admin/  (staff user: .venv/bin/python manage.py createsuperuser)",
                    f"  websockets   {base.replace('http', 'ws', 1)}/ws/events/",
                    "Ctrl-C stops everything.",
                ]
            )
        )
