"""Issue 12, defect 1: concurrent saves of one document against a real server.

Every acknowledged save must be a distinct version: the version's time is its identity, so two
saves in the same millisecond must not share it (one would silently overwrite the other).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.realtime.conftest import Server, start_server

SAVES = 20


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = start_server(WEB_CONCURRENCY="1")
    yield started
    started.stop()


def test_concurrent_saves_of_one_document_all_become_versions(server, alice):
    token = alice["token"]
    status, first = server.api("POST", "/api/storage/document", token, {"title": "t", "content": "v0"})
    assert status == 201, first
    doc_id = first["id"]

    def save(n: int) -> tuple[int, dict]:
        return server.api("POST", "/api/storage/document", token, {"id": doc_id, "title": f"t{n}", "content": f"v{n}"})

    with ThreadPoolExecutor(SAVES) as pool:
        replies = list(pool.map(save, range(1, SAVES + 1)))
    assert [status for status, _ in replies] == [201] * SAVES
    acknowledged = {body["createdAt"] for _, body in replies}
    assert len(acknowledged) == SAVES  # every save got a time of its own

    status, versions = server.api("GET", f"/api/storage/document/{doc_id}/versions", token)
    assert status == 200
    assert len(versions) == SAVES + 1
    assert sorted(v["content"] for v in versions) == sorted(["v0", *(f"v{n}" for n in range(1, SAVES + 1))])
    times = [v["createdAt"] for v in versions]
    assert times == sorted(times) and len(set(times)) == len(times)  # a total order
    by_time = {v["createdAt"]: v["content"] for v in versions}
    assert all(by_time[body["createdAt"]] == body["content"] for _, body in replies)
