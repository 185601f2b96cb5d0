"""The documented production environment (deploy/) passes Django's deployment checks."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from mookti.logs import logging_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def production_env() -> dict[str, str]:
    """deploy/production.env with its placeholders filled in, on top of a clean environment."""
    values = {}
    for line in (DEPLOY / "production.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    assert all("<" in values[n] for n in ("DJANGO_SECRET_KEY", "MOOKTI_SERVICE_KEY", "REDIS_URL"))
    values["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    values["MOOKTI_SERVICE_KEY"] = secrets.token_urlsafe(32)
    values["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    values["MOOKTI_DATA_DIR"] = os.environ["MOOKTI_DATA_DIR"]
    keep = ("PATH", "HOME", "LANG", "MOOKTI_REDIS_PREFIX")
    return {**{n: os.environ[n] for n in keep if n in os.environ}, **values}


def test_check_deploy_is_clean_with_the_documented_production_environment():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_production_settings_are_what_the_documentation_says():
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.CSRF_TRUSTED_ORIGINS, s.DEBUG)"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip().splitlines()[-1] == (
        "('HTTP_X_FORWARDED_PROTO', 'https') True True True 31536000 ['https://storage.example.com'] False"
    ), result.stderr


def test_the_uvicorn_log_config_of_the_units_is_the_service_format():
    assert json.loads((DEPLOY / "logging.json").read_text()) == logging_config("INFO")
    for unit in ("mookti-web.service", "Procfile"):
        assert "--log-config" in (DEPLOY / unit).read_text() and "deploy/logging.json" in (DEPLOY / unit).read_text()
