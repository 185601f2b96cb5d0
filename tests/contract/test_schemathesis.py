"""Schema fuzzing: schemathesis with every check over the whole schema against a live server.

Three runs, in this order, each bounded (``MOOKTI_FUZZ_EXAMPLES`` examples per operation):
1. the service key acting for a real user (``X-Mookti-User``), every operation but the two that
   end the acting credentials (``deleteUser``, ``revokeToken``);
2. a user token, the same operations;
3. those two last, so deleting the acting user or revoking its token cannot hide the rest.

The checks (``--checks all``): no server error, status codes documented, content types and
headers documented, responses conform to their schemas, positive (schema-valid) data accepted,
negative data rejected, missing auth refused, unsupported methods refused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from storage.managers import tokens, users
from tests.realtime.conftest import ROOT, Server, start_server

pytestmark = pytest.mark.slow

EXAMPLES = os.environ.get("MOOKTI_FUZZ_EXAMPLES", "5")
# schemathesis's coverage phase (every boundary value of every parameter) takes over ten minutes
# on a shared two-core machine: opt in with MOOKTI_FUZZ_PHASES=examples,coverage,fuzzing,stateful.
PHASES = os.environ.get("MOOKTI_FUZZ_PHASES", "examples,fuzzing,stateful")
LAST = ["deleteUser", "revokeToken"]
# Left to tests/storage/test_streams.py: a stream read answers server-sent events until the stream
# ends, and fuzz workers appending to the same stream keep it open past any request timeout.
NOT_FUZZED = ["resumeStream"]
# Seconds per run (schemathesis's --max-time: fuzzing and stateful testing repeat until it is
# spent), so the three runs take about five minutes whatever the machine.
BUDGET = int(os.environ.get("MOOKTI_FUZZ_SECONDS", "90"))
SLACK = 150  # loading the schema, the examples phase, the report


@dataclass
class Outcome:
    cases: int
    failures: int
    output: str


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # the fuzzer sends many messages; a stream it left open goes stale (and its readers' event
    # stream ends) well within a request's timeout
    started = start_server(MOOKTI_LIMIT_FREE="100000", MOOKTI_LOG_LEVEL="ERROR", MOOKTI_STREAM_STALE_AFTER="5")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def actor(server: Server) -> dict[str, str]:
    user = users.create(f"fuzz-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery")
    token = tokens.issue(user["id"])["token"]
    # the first search loads the embedding model: not within one fuzzed request's timeout
    status, _ = server.api("POST", "/api/storage/search/", token, {"query": "warm up"}, timeout=300)
    assert status == 200
    return {"id": user["id"], "token": token}


def fuzz(
    server: Server, tmp_path: Path, headers: dict[str, str], *, only: list[str] | None = None, budget: int = BUDGET
) -> Outcome:
    report = tmp_path / "junit.xml"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.base}/api/schema/",
        "--url", server.base, "--checks", "all", "--max-examples", EXAMPLES, "--seed", "1", "--phases", PHASES,
        "--report", "junit", "--report-junit-path", str(report), "--no-color", "--generation-database", "none",
        "--max-time", str(budget), "--workers", "2", "--request-timeout", "60", "--max-response-time", "60",
    ]  # fmt: skip
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    for operation_id in only or [*LAST, *NOT_FUZZED]:
        command += ["--include-operation-id" if only else "--exclude-operation-id", operation_id]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.contract.hooks", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget + SLACK)
    output = done.stdout + done.stderr
    print(output[-6000:])
    cases = sum(int(n) for n in re.findall(r"(\d+) generated", output)) or _junit_cases(report)
    failures = _junit_failures(report) if report.exists() else -1
    if done.returncode not in (0, 1):
        pytest.fail(f"schemathesis did not run (exit {done.returncode}):\n{output[-3000:]}")
    return Outcome(cases, failures if done.returncode == 1 else 0, output)


def _junit_cases(report: Path) -> int:
    return int(ET.parse(report).getroot().get("tests", 0)) if report.exists() else 0


def _junit_failures(report: Path) -> int:
    root = ET.parse(report).getroot()
    return sum(int(suite.get("failures", 0)) + int(suite.get("errors", 0)) for suite in root.iter("testsuite"))


def test_fuzz_as_the_service_key_acting_for_a_user(server, actor, tmp_path) -> None:
    outcome = fuzz(
        server, tmp_path, {"Authorization": f"Bearer {settings.MOOKTI_SERVICE_KEY}", "X-Mookti-User": actor["id"]}
    )
    assert outcome.cases > 0 and outcome.failures == 0, outcome.output[-4000:]


def test_fuzz_with_a_user_token(server, actor, tmp_path) -> None:
    outcome = fuzz(server, tmp_path, {"Authorization": f"Bearer {actor['token']}"})
    assert outcome.cases > 0 and outcome.failures == 0, outcome.output[-4000:]


def test_fuzz_the_operations_that_end_the_credentials_last(server, actor, tmp_path) -> None:
    outcome = fuzz(
        server,
        tmp_path,
        {"Authorization": f"Bearer {settings.MOOKTI_SERVICE_KEY}", "X-Mookti-User": actor["id"]},
        only=LAST,
        budget=max(BUDGET // 3, 10),
    )
    assert outcome.cases > 0 and outcome.failures == 0, outcome.output[-4000:]
