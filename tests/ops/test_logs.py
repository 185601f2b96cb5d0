"""One log format with secrets masked; progress bars only on a terminal; a 4xx is not logged by Django."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mookti import logs
from mookti.progress import progress

SECRETS_ENV = {
    "REDIS_URL": "rediss://default:upstash-token-123@eu1.upstash.io:6379",
    "DATABASE_URL": "postgres://app:db%2Fpass-456@db.internal/staff",
    "MOOKTI_SERVICE_KEY": "service-key-789",
    "OPENAI_API_KEY": "sk-openai-000",
    "DJANGO_SECRET_KEY": "x",  # too short to be masked inside text
}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rediss://default:tok3n@eu1.upstash.io:6379/0", "rediss://default:***@eu1.upstash.io:6379/0"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://onlytoken@host:6379", "redis://***@host:6379"),
        ("postgres://u:p@[::1]:5432/db", "postgres://u:***@[::1]:5432/db"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_mask_url(url, shown):
    assert logs.mask_url(url) == shown


def test_configured_secrets_are_the_values_and_url_passwords():
    found = logs.configured_secrets(SECRETS_ENV)
    assert set(found) == {"upstash-token-123", "db%2Fpass-456", "db/pass-456", "service-key-789", "sk-openai-000"}


def record(message: str, *args, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("mookti.test", logging.ERROR, __file__, 1, message, args, exc_info)


@pytest.mark.parametrize("json_lines", [False, True])
def test_formatters_mask_secrets_in_messages_and_tracebacks(monkeypatch, json_lines):
    for name, value in SECRETS_ENV.items():
        monkeypatch.setenv(name, value)
    try:
        raise ConnectionError(f"cannot reach {SECRETS_ENV['REDIS_URL']}")
    except ConnectionError as error:
        exc = error
    formatter = logs.console_formatter(json_lines)
    line = formatter.format(record("using %s with key %s", SECRETS_ENV["DATABASE_URL"], "service-key-789", exc=exc))
    for secret in logs.configured_secrets(SECRETS_ENV):
        assert secret not in line
    if json_lines:
        entry = json.loads(line)
        assert set(entry) == {"time", "level", "logger", "message", "exception"}
        assert entry["message"] == "using postgres://app:***@db.internal/staff with key ***"
        assert "cannot reach rediss://default:***@eu1.upstash.io:6379" in entry["exception"]
    else:
        first = line.splitlines()[0]
        assert first.split(" ", 4)[2:] == [
            "ERROR",
            "mookti.test",
            "using postgres://app:***@db.internal/staff with key ***",
        ]


def test_a_4xx_is_left_to_the_access_log(client, caplog):
    with caplog.at_level(logging.INFO):
        assert client.get("/api/storage/chat").status_code == 401
        assert client.get("/api/storage/nowhere").status_code == 404
    assert not [r for r in caplog.records if r.name == "django.request"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_is_one_count_line():
    stream = io.StringIO()
    with progress(total=3, desc="users", unit="user", file=stream) as bar:
        for _ in range(3):
            bar.update(1)
    assert stream.getvalue() == "users: 3 users\n"


def test_progress_on_a_terminal_is_a_bar_and_disabled_is_silent():
    terminal = Terminal()
    with progress(total=2, unit="item", file=terminal) as bar:
        bar.update(2)
    assert "2/2" in terminal.getvalue()
    quiet = io.StringIO()
    with progress(total=2, enabled=False, file=quiet) as bar:
        bar.update(2)
    assert quiet.getvalue() == ""
