"""One log format for every process (serve, uvicorn, indexer, commands), with secrets masked.

A line is ``timestamp level logger message`` (or one JSON object per line with
``MOOKTI_LOG_JSON=1``). The formatters replace every secret the service was configured with
(passwords in ``REDIS_URL``/``CHANNEL_REDIS_URL``/``DATABASE_URL``, the service key, the Django
secret key, API keys) by ``***`` in the message and in tracebacks, so a library that logs a URL
or an exception that repeats one cannot leak it. :func:`mask_url` masks one URL for display
(serve's start-up lines, the admin's operations page).

No Django import here: uvicorn loads this through ``--log-config`` before Django is set up.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# Environment variables that are secrets as a whole, and URLs whose password is one.
SECRET_VARIABLES = ("MOOKTI_SERVICE_KEY", "DJANGO_SECRET_KEY", "OPENAI_API_KEY", "PINECONE_API_KEY")
URL_VARIABLES = ("REDIS_URL", "CHANNEL_REDIS_URL", "DATABASE_URL")
# Shorter values are not masked inside text (a 3-letter password would garble every line).
MIN_SECRET_LENGTH = 6


def mask_url(url: str) -> str:
    """``url`` with its password (and a token-only user name) replaced by ``***``; safe to show or log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None and not (parts.username and "@" in parts.netloc):
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host += f":{parts.port}"
    credentials = f"{parts.username or ''}:{MASK}" if parts.password is not None else MASK
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))


def configured_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """The secret values in the environment (raw and URL-decoded), longest first."""
    environ = os.environ if environ is None else environ
    found = {environ.get(name, "") for name in SECRET_VARIABLES}
    for name in URL_VARIABLES:
        try:
            parts = urlsplit(environ.get(name, ""))
            secret = parts.password or (parts.username if "@" in parts.netloc else None)
        except ValueError:
            continue
        if secret:  # the password, or a token given as the user name (rediss://token@host)
            found |= {secret, unquote(secret)}
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every configured secret replaced by ``***``."""
    for secret in configured_secrets() if secrets is None else secrets:
        text = text.replace(secret, MASK)
    return text


class Formatter(logging.Formatter):
    """``2026-12-01 23:30:00,123 INFO mookti.serve message``, secrets masked."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%", **kwargs: Any) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(message)s", datefmt, style)  # type: ignore[arg-type]
        self.secrets = configured_secrets()

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class JsonFormatter(Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` (+ ``exception``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage(), self.secrets),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info), self.secrets)
        return json.dumps(entry, ensure_ascii=False)


def wants_json(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("MOOKTI_LOG_JSON", "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def console_formatter(json_lines: bool | None = None) -> logging.Formatter:
    """The formatter of the console handler (``dictConfig`` factory): JSON lines or plain text."""
    return JsonFormatter() if (wants_json() if json_lines is None else json_lines) else Formatter()


def logging_config(level: str | None = None, *, json_lines: bool | None = None) -> dict[str, Any]:
    """The ``dictConfig`` every process uses: one console handler on stderr, one format.

    ``json_lines=None`` decides by ``MOOKTI_LOG_JSON`` when logging is set up (so a static file,
    ``deploy/logging.json`` for uvicorn, follows the environment too). ``django.request`` logs only
    server errors: a 4xx is logged once, by the server's access log. uvicorn's loggers go through
    the same handler.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"console": {"()": "mookti.logs.console_formatter", "json_lines": json_lines}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "console"}},
        "root": {"handlers": ["console"], "level": level or os.environ.get("MOOKTI_LOG_LEVEL", "INFO")},
        "loggers": {
            "django.request": {"level": "ERROR"},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
