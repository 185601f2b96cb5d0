"""`make test`'s runner: pytest's exit code is passed on, and "no tests collected" fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_tests(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/run_tests.py", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )


def test_no_tests_collected_is_a_failure(tmp_path):
    (tmp_path / "test_empty.py").write_text('"""No tests here."""\n')
    result = run_tests(str(tmp_path))
    assert result.returncode == 1, result.stdout
    assert "collected no tests: that is a failure" in result.stdout


def test_failing_and_passing_runs_keep_their_exit_code(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    assert run_tests(str(tmp_path / "test_one.py"), "-k", "ok").returncode == 0
    assert run_tests(str(tmp_path / "test_one.py")).returncode == 1
