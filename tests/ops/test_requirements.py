"""Runtime requirements apart from tests and tooling; constraints pin the whole tree; the lock is hashed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"pytest", "pytest-django", "pytest-timeout", "ruff", "playwright", "daphne", "twisted"}


def pins(name: str) -> dict[str, str]:
    """{normalised package name: version without a local label} of a requirements-style file."""
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s+;]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return found


def test_runtime_requirements_hold_no_test_tools_and_keep_the_torch_rule():
    runtime = pins("requirements.txt")
    assert not DEV_TOOLS & runtime.keys()
    assert runtime["torch"] == "2.13.0"
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in dev.splitlines()
    assert {"pytest", "ruff", "playwright", "daphne"} <= pins("requirements-dev.txt").keys()


def test_constraints_pin_every_requirement_at_its_version():
    constraints = pins("constraints.txt")
    for name in ("requirements.txt", "requirements-dev.txt"):
        for package, version in pins(name).items():
            assert constraints.get(package) == version, (name, package)


def test_the_lock_is_the_hashed_runtime_tree_within_the_constraints():
    lines = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if not line.startswith("#")]
    assert lines and all(re.search(r" --hash=sha256:[0-9a-f]{64}$", line) for line in lines)
    lock, constraints = pins("requirements.lock"), pins("constraints.txt")
    assert pins("requirements.txt").items() <= lock.items()
    assert all(constraints.get(package) == version for package, version in lock.items())
    assert not DEV_TOOLS & lock.keys()
