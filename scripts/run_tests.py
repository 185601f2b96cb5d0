"""``make test``: make sure a Redis answers and Chromium is installed, then run the whole pytest suite.

- Redis: the one at ``REDIS_URL`` (default redis://127.0.0.1:6379/0); if none answers, a local
  ``redis-server`` is started the way ``make run`` does (``mookti.localredis``) and stopped after.
- Browser tests drive Debian's ``chromium`` through the ``playwright`` package (never
  ``playwright install``): installed with apt-get when missing and running as root.
- pytest's exit code is passed on, except 5 ("no tests collected"), which is a failure here.

Extra arguments go to pytest: ``make test ARGS="tests/ops -x"``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mookti import localredis  # noqa: E402 - needs the repository on sys.path

NO_TESTS_COLLECTED = 5


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


def main(pytest_args: list[str]) -> int:
    url = os.environ.get("REDIS_URL", localredis.DEFAULT_URL)
    ensure_chromium()
    redis_process = start_redis_if_needed(url)
    try:
        say("pytest " + " ".join(pytest_args))
        code = subprocess.call([str(ROOT / ".venv" / "bin" / "pytest"), *pytest_args], cwd=ROOT)
    finally:
        if redis_process is not None:
            localredis.stop(redis_process)
    if code == NO_TESTS_COLLECTED:
        say("pytest collected no tests: that is a failure")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
