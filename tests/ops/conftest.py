"""Every ops test's in-process log records are checked for this run's secrets (serve runs check their own output)."""

from __future__ import annotations

import pytest
from django.conf import settings

from mookti.logs import configured_secrets


@pytest.fixture(autouse=True)
def _no_secret_logged(caplog):
    yield
    secrets = {*configured_secrets(), settings.MOOKTI_SERVICE_KEY, settings.SECRET_KEY} - {""}
    leaked = [s for s in secrets if s in caplog.text]
    assert not leaked, "a secret reached the logs"
