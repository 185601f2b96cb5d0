"""Liveness without dependencies, readiness with them, and only live indexer consumers counted."""

from __future__ import annotations

import time

from mookti import keys as mookti_keys
from mookti.redis import get_redis
from storage.search.indexer import GROUP, index_metrics


def test_live_and_ready(client):
    assert client.get("/api/health/live").json() == {"status": "ok"}
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == {"ok": True}
    assert client.get("/api/health/").json()["checks"].keys() == ready.json()["checks"].keys()


def test_stopped_indexers_are_not_counted(settings):
    """A consumer name stays in the group after its indexer stopped; only recent readers count."""
    settings.MOOKTI_INDEXER = {**settings.MOOKTI_INDEXER, "CLAIM_IDLE_MS": 1000}
    client = get_redis()
    outbox = mookti_keys.outbox()
    client.xgroup_create(outbox, GROUP, id="0", mkstream=True)
    try:
        client.xgroup_createconsumer(outbox, GROUP, "stopped-indexer")
        time.sleep(1.2)  # longer than CLAIM_IDLE_MS: that consumer is gone
        client.xgroup_createconsumer(outbox, GROUP, "running-indexer")
        assert index_metrics()["consumers"] == 1
    finally:
        client.delete(outbox)
