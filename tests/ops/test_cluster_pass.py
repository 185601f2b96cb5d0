"""`make test`'s Redis Cluster pass: a real cluster for the second run, its result counts, and it is always stopped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]

# Runs inside the cluster pass: the environment points at a real, healthy 3-master cluster.
CLUSTER_CHECK = """
import os
from redis.cluster import RedisCluster


def test_the_environment_names_a_cluster():
    assert os.environ["REDIS_CLUSTER"] == "true"
    assert os.environ["CHANNEL_REDIS_URL"] == os.environ["MAIN_REDIS_URL"]
    client = RedisCluster.from_url(os.environ["REDIS_URL"])
    assert len(client.get_primaries()) == 3
    assert client.cluster_info()["cluster_state"] == "ok"
    client.close()
"""


def run_tests(tmp_path: Path, main_test: str, cluster_test: str | None, mode: str = "1") -> tuple[int, str]:
    (tmp_path / "test_main.py").write_text(main_test)
    env = {**os.environ, "MOOKTI_CLUSTER_PASS": mode, "MOOKTI_LINT": "0"}  # linters: tests/ops/test_run_tests.py
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env["MAIN_REDIS_URL"] = env["REDIS_URL"]
    env.pop("CHANNEL_REDIS_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # plain tests: no Django setup in the nested runs
    if cluster_test is not None:
        (tmp_path / "cluster" / "test_cluster.py").parent.mkdir()
        (tmp_path / "cluster" / "test_cluster.py").write_text(cluster_test)
        env["MOOKTI_CLUSTER_ARGS"] = f"-p no:cacheprovider {tmp_path / 'cluster' / 'test_cluster.py'}"
    result = subprocess.run(
        [sys.executable, "scripts/run_tests.py", "-p", "no:cacheprovider", str(tmp_path / "test_main.py")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return result.returncode, result.stdout + result.stderr


def cluster_port(output: str) -> int:
    match = re.search(r"cluster pass: Redis Cluster at redis://127\.0\.0\.1:(\d+)/0", output)
    assert match, output
    return int(match.group(1))


def answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
    except redis.ConnectionError:
        return False


def test_the_cluster_pass_runs_on_a_real_cluster_and_stops_it(tmp_path):
    code, output = run_tests(tmp_path, "def test_ok():\n    pass\n", CLUSTER_CHECK)
    assert code == 0, output
    assert "1 passed" in output.split("cluster pass: Redis Cluster at")[1]
    port = cluster_port(output)
    assert not any(answers(p) for p in range(port, port + 3))
    assert not (Path(os.environ["MOOKTI_DATA_DIR"]) / f"cluster-{port}").exists()  # its data is gone too


def test_a_failing_cluster_pass_fails_the_run_and_still_stops_the_cluster(tmp_path):
    code, output = run_tests(tmp_path, "def test_ok():\n    pass\n", "def test_bad():\n    assert False\n")
    assert code == 1, output
    assert "cluster pass FAILED" in output
    port = cluster_port(output)
    assert not any(answers(p) for p in range(port, port + 3))


def test_no_cluster_pass_after_a_failed_main_run_or_for_a_partial_run(tmp_path):
    code, output = run_tests(tmp_path, "def test_bad():\n    assert False\n", None)
    assert code == 1 and "cluster pass" not in output, output
    code, output = run_tests(tmp_path, "def test_ok():\n    pass\n", None, mode="auto")
    assert code == 0 and "cluster pass" not in output, output  # extra pytest arguments: a partial run
