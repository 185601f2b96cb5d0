"""`manage.py run_indexer` killed (SIGKILL) in the middle of a batch: another process takes its entries
over and every message ends up indexed exactly once. An indexer that stops gracefully hands what it
still holds to the others at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mookti import keys as mookti_keys
from mookti.redis import get_redis
from storage.search import keys as search_keys
from storage.search.indexer import GROUP, index_metrics
from storage.search.vectors import user_namespace
from tests.search.conftest import new_chat
from tests.search.test_commands import remote_env

ROOT = Path(__file__).resolve().parents[2]
# The dead process's lease on the user expires quickly; its entries count as abandoned after 0.5 s.
CRASH_SETTINGS = {"MOOKTI_INDEXER_LEASE_MS": "1500", "MOOKTI_INDEXER_CLAIM_IDLE_MS": "500"}


def start_indexer(env: dict[str, str], consumer: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_indexer", "--consumer", consumer],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def post_one(user: dict[str, Any], chat_id: str, text: str) -> dict[str, Any]:
    """One message per request: one outbox entry each."""
    body = {"chatId": chat_id, "role": "user", "parts": [{"type": "text", "text": text}]}
    response = user["api"].post("/api/storage/message", body)
    assert response.status_code == 201, response.content
    return response.json()[0]


def pending_of(consumer: str) -> list[str]:
    entries = get_redis().xpending_range(mookti_keys.outbox(), GROUP, "-", "+", 1000, consumername=consumer)
    return [entry["message_id"] for entry in entries]


def stop(process: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM and the output (killed if it does not stop)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def test_a_killed_indexers_entries_are_taken_over_and_indexed_once(faulty_servers, make_user):
    pinecone = faulty_servers["pinecone"]
    env = {**remote_env(faulty_servers), **CRASH_SETTINGS}
    user = make_user(user_type="pro")
    namespace = user_namespace(user["id"])
    chat_id = new_chat(user, "Crash course")["id"]
    before = [post_one(user, chat_id, f"written before the crash {n}") for n in range(6)]

    pinecone.faults.set("hold", "/vectors/upsert")  # the batch gets as far as the vector store, no further
    doomed = start_indexer(env, "doomed")
    try:
        assert pinecone.faults.wait_held(timeout=90), "the indexer never reached Pinecone"
        in_flight = pending_of("doomed")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        doomed.communicate()
    assert len(in_flight) == len(before)  # read, not acked
    pinecone.faults.clear()  # the held upsert now fails, to nobody: it never lands

    after = [post_one(user, chat_id, f"written after the crash {n}") for n in range(3)]
    expected = {f"msg:{chat_id}#{m['id']}": m["content"] for m in before + after}
    rescuer = start_indexer(env, "rescuer")
    try:
        deadline = time.monotonic() + 90
        while set(pinecone.vectors(namespace)) != set(expected) or index_metrics()["pending"]:
            assert rescuer.poll() is None, rescuer.communicate()
            assert time.monotonic() < deadline, (pinecone.vectors(namespace).keys(), index_metrics())
            time.sleep(0.1)
    finally:
        out, err = stop(rescuer)
    assert rescuer.returncode == 0, err

    assert f"took over {len(before)} entries from stopped consumers" in err
    assert f"'entries': {len(expected)}" in out  # each entry handled once, by the rescuer
    stored = {vector_id: metadata["snippet"] for vector_id, (_, metadata) in pinecone.vectors(namespace).items()}
    assert stored == expected
    written = {name: count for name, count in pinecone.upserts.items() if name.startswith(f"{namespace}/")}
    assert written == {f"{namespace}/{vector_id}": 1 for vector_id in expected}  # exactly once each
    assert pending_of("doomed") == [] and index_metrics() == {**index_metrics(), "lag": 0, "pending": 0, "dead": 0}


def test_a_stopped_indexer_hands_its_retries_over_at_once(remote, make_user, make_indexer):
    """Entries it holds for a retry (the user is leased elsewhere) are not stuck for CLAIM_IDLE_MS (60 s)."""
    user = make_user(user_type="pro")
    chat = new_chat(user, "Handover", ["first to hand over", "second to hand over"])
    get_redis().set(search_keys.index_lease(user["id"]), "someone-else", px=60_000)
    leaving = make_indexer("leaving")
    stop_leaving = threading.Event()
    thread = threading.Thread(target=leaving.run_forever, args=(stop_leaving,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not leaving._retry:
            assert time.monotonic() < deadline, "the entries never waited for the lease"
            time.sleep(0.02)
    finally:
        stop_leaving.set()
        thread.join(timeout=30)
    assert pending_of("leaving")  # still its entries, but marked idle
    get_redis().delete(search_keys.index_lease(user["id"]))
    staying = make_indexer("staying")
    assert staying.options["CLAIM_IDLE_MS"] == 60_000
    assert staying.drain(timeout=10)
    expected = {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]}
    assert set(remote["pinecone"].vectors(user_namespace(user["id"]))) == expected
    assert pending_of("leaving") == []
