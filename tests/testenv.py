"""Pytest plugin, loaded with -p before Django reads its settings: test-run isolation.

A unique Redis key prefix per run (and per xdist worker), removed at the end.

Set before Django reads its settings, so the cache, sessions and channel layer use it too.
"""

import os
import uuid

RUN_PREFIX = f"mookti-test:{uuid.uuid4().hex[:12]}:{os.environ.get('PYTEST_XDIST_WORKER', 'main')}:"
os.environ["MOOKTI_REDIS_PREFIX"] = RUN_PREFIX
os.environ.setdefault("MOOKTI_SERVICE_KEY", "test-service-key-" + uuid.uuid4().hex)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
os.environ.setdefault(
    "MOOKTI_DATA_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var", "test")
)
os.makedirs(os.environ["MOOKTI_DATA_DIR"], exist_ok=True)
