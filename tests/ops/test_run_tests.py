"""`make test`'s runner: the linters stop it first, pytest's exit code is passed on, and "no tests
collected" fails."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_tests(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/run_tests.py", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**os.environ, "MOOKTI_LINT": "0"},  # the linters of the whole repository are tested below
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )


def runner_module():
    spec = importlib.util.spec_from_file_location("run_tests_script", ROOT / "scripts" / "run_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failing_linter_stops_the_run_naming_the_command(tmp_path, monkeypatch, capsys):
    runner = runner_module()
    (tmp_path / "clean.py").write_text("VALUE = 1\n")
    (tmp_path / "unused.py").write_text("import os\n")
    monkeypatch.delenv("MOOKTI_LINT", raising=False)
    monkeypatch.setattr(runner, "LINTERS", [("lint (ruff check)", ["ruff", "check", str(tmp_path / "clean.py")])])
    assert runner.run_linters() == 0
    failing = [
        ("lint (ruff check)", ["ruff", "check", str(tmp_path / "clean.py")]),
        ("lint (ruff check)", ["ruff", "check", str(tmp_path / "unused.py")]),
        ("never reached", ["ruff", "check", "--definitely-not-an-option"]),
    ]
    monkeypatch.setattr(runner, "LINTERS", failing)
    assert runner.run_linters() == 1
    output = capsys.readouterr().out
    assert f"FAILED: lint (ruff check). Run: .venv/bin/ruff check {tmp_path / 'unused.py'}" in output
    assert "never reached" not in output


def test_no_tests_collected_is_a_failure(tmp_path):
    (tmp_path / "test_empty.py").write_text('"""No tests here."""\n')
    result = run_tests(str(tmp_path))
    assert result.returncode == 1, result.stdout
    assert "collected no tests: that is a failure" in result.stdout


def test_failing_and_passing_runs_keep_their_exit_code(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    assert run_tests(str(tmp_path / "test_one.py"), "-k", "ok").returncode == 0
    assert run_tests(str(tmp_path / "test_one.py")).returncode == 1
