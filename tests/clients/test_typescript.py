"""The TypeScript client (``clients/typescript``) against a live server: its own checks, run by node.

``run-tests.sh`` installs the locked npm tree, fails when the committed ``src/schema.d.ts`` drifts
from what the live ``/api/schema/`` generates, type-checks with ``tsc --strict``, then calls every
adapter function (ai-chatbot's ``lib/db/queries.ts`` names) and the ``resumable-stream`` drop-in,
validating each response body against the schema with ajv (``MOOKTI_SCHEMA_STRICT=1``: any
mismatch fails).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.realtime.conftest import ROOT, Server, start_server

pytestmark = pytest.mark.slow

CLIENT = ROOT / "clients" / "typescript"
SERVICE_KEY = "ts-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = start_server(MOOKTI_SERVICE_KEY=SERVICE_KEY)
    yield started
    started.stop()


def test_typescript_client_passes_its_checks_against_the_live_schema(server: Server) -> None:
    assert shutil.which("npm"), "Node.js and npm are needed for the TypeScript client's checks"
    env = {
        **os.environ,
        "MOOKTI_URL": server.base,
        "MOOKTI_SERVICE_KEY": SERVICE_KEY,
        "MOOKTI_SCHEMA_STRICT": "1",
    }
    run = subprocess.run(
        [str(CLIENT / "run-tests.sh")], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
