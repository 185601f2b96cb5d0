"""The outbox indexer against Pinecone and OpenAI (real SDKs, fake servers): paths, outages, dead letters."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import pytest
import redis
from django.core.management import call_command

from mookti import keys as mookti_keys
from mookti import outbox
from mookti.backends import IndexMismatch
from mookti.redis import Write, get_redis
from storage.managers import documents, messages
from storage.search import keys as search_keys
from storage.search.indexer import GROUP, dead_letters, index_metrics, retry_dead_letters
from storage.search.vectors import chat_prefix, user_namespace
from tests.search.conftest import new_chat, search_api


@pytest.fixture
def pro(make_user):
    """Users with a high daily message allowance (rate limits are not under test here)."""
    return lambda name="Pro": make_user(name=name, user_type="pro")


def ns(user) -> str:
    return user_namespace(user["id"])


def test_writes_become_vectors_and_deletes_remove_them(remote, pro, make_indexer):
    pinecone = remote["pinecone"]
    alice = pro()
    chat = new_chat(alice, "Cooking", ["How long do I boil pasta?", "Salt the water first."])
    empty = (
        alice["api"]
        .post(
            "/api/storage/message", {"chatId": chat["id"], "role": "assistant", "parts": [{"type": "file", "url": "x"}]}
        )
        .json()[0]
    )
    indexer = make_indexer()
    assert indexer.drain()
    stored = pinecone.vectors(ns(alice))
    first, second = chat["messages"]
    assert set(stored) == {f"msg:{chat['id']}#{first['id']}", f"msg:{chat['id']}#{second['id']}"}  # no empty text
    metadata = stored[f"msg:{chat['id']}#{first['id']}"][1]
    assert metadata == {
        "userId": alice["id"],
        "chatId": chat["id"],
        "messageId": first["id"],
        "role": "user",
        "kind": "message",
        "createdAt": pytest.approx(messages.get(alice["id"], first["id"])["createdAt"] / 1e6, abs=1e-3),
        "title": "Cooking",
        "snippet": "How long do I boil pasta?",
    }
    assert empty["id"] not in " ".join(stored)

    alice["api"].patch(
        f"/api/storage/message/{first['id']}", {"parts": [{"type": "text", "text": "Boil it 9 minutes"}]}
    )
    assert indexer.drain()
    assert pinecone.vectors(ns(alice))[f"msg:{chat['id']}#{first['id']}"][1]["snippet"] == "Boil it 9 minutes"

    query = urlencode({"chatId": chat["id"], "timestamp": second["createdAt"]})
    response = alice["api"].delete(f"/api/storage/message/after?{query}")
    assert response.status_code == 200, response.content
    assert indexer.drain()
    assert set(pinecone.vectors(ns(alice))) == {f"msg:{chat['id']}#{first['id']}"}

    alice["api"].delete(f"/api/storage/chat/{chat['id']}")
    assert indexer.drain()
    assert not [i for i in pinecone.vectors(ns(alice)) if i.startswith(chat_prefix(chat["id"]))]


def test_documents_are_chunked_and_follow_their_latest_version(remote, pro, make_indexer, settings):
    settings.MOOKTI_SEARCH = {**settings.MOOKTI_SEARCH, "CHUNK_CHARS": 200, "CHUNK_OVERLAP": 40}
    pinecone = remote["pinecone"]
    alice = pro()
    long_text = " ".join(f"Paragraph {i} explains photosynthesis step {i}." for i in range(40))
    doc = alice["api"].post("/api/storage/document", {"title": "Biology", "kind": "text", "content": long_text}).json()
    indexer = make_indexer()
    assert indexer.drain()
    chunks = {i: m for i, (_, m) in pinecone.vectors(ns(alice)).items() if i.startswith(f"doc:{doc['id']}#")}
    assert len(chunks) > 5
    assert {m["chunk"] for m in chunks.values()} == set(range(len(chunks)))
    assert all(
        m["kind"] == "document" and m["title"] == "Biology" and m["documentId"] == doc["id"] for m in chunks.values()
    )

    alice["api"].post(
        "/api/storage/document", {"id": doc["id"], "title": "Biology v2", "kind": "text", "content": "Short now."}
    )
    assert indexer.drain()
    left = {i: m for i, (_, m) in pinecone.vectors(ns(alice)).items() if i.startswith(f"doc:{doc['id']}#")}
    assert list(left) == [f"doc:{doc['id']}#0"] and left[f"doc:{doc['id']}#0"]["title"] == "Biology v2"

    uploaded = alice["api"].post(
        "/api/storage/document",
        {"title": "Notes", "file": _text_file("Mitochondria are the powerhouse of the cell.")},
        format="multipart",
    )
    assert uploaded.status_code == 201, uploaded.content
    alice["api"].delete(f"/api/storage/document/{doc['id']}")
    assert indexer.drain()
    remaining = pinecone.vectors(ns(alice))
    assert list(remaining) == [f"doc:{uploaded.json()['id']}#0"]
    assert remaining[f"doc:{uploaded.json()['id']}#0"][1]["snippet"] == "Mitochondria are the powerhouse of the cell."


def _text_file(text: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("notes.txt", text.encode(), content_type="text/plain")


def test_user_delete_drops_the_namespace(remote, pro, make_indexer, service):
    pinecone = remote["pinecone"]
    alice, bob = pro("Alice"), pro("Bob")
    new_chat(alice, "A", ["alpha message"])
    new_chat(bob, "B", ["bravo message"])
    indexer = make_indexer()
    assert indexer.drain()
    assert pinecone.vectors(ns(alice)) and pinecone.vectors(ns(bob))
    assert service.delete(f"/api/storage/user/{alice['id']}").status_code == 204
    assert indexer.drain()
    assert not pinecone.vectors(ns(alice)) and pinecone.vectors(ns(bob))


def test_indexer_survives_an_outage_and_indexes_each_message_once(remote, pro, make_indexer):
    pinecone = remote["pinecone"]
    alice = pro()
    indexer = make_indexer()
    new_chat(alice, "Warm-up", ["before the outage"])
    assert indexer.drain()
    pinecone.stop()
    chat = new_chat(alice, "During", [f"message {i} about rivers" for i in range(20)])
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        indexer.run_once(block_ms=0)
        time.sleep(0.01)
    assert indexer.stats["outages"] >= 2  # kept retrying with backoff
    metrics = index_metrics()
    assert metrics["pending"] + metrics["lag"] == 20 and metrics["dead"] == 0
    pinecone.start()
    assert indexer.drain()
    stored = pinecone.vectors(ns(alice))
    expected = {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]}
    assert expected <= set(stored)
    assert all(pinecone.upserts[f"{ns(alice)}/{vector_id}"] == 1 for vector_id in expected)  # none twice
    assert index_metrics() == {**index_metrics(), "lag": 0, "pending": 0, "dead": 0}


def test_embedding_outage_pauses_without_losing_entries(remote, pro, make_indexer):
    openai = remote["openai"]
    alice = pro()
    openai.stop()
    chat = new_chat(alice, "Physics", ["why is the sky blue", "rayleigh scattering"])
    indexer = make_indexer()
    assert not indexer.drain(timeout=0.5)
    assert indexer.stats["outages"] >= 1 and index_metrics()["dead"] == 0
    openai.start()
    assert indexer.drain()
    assert {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]} == set(remote["pinecone"].vectors(ns(alice)))


def test_an_entry_that_keeps_failing_becomes_a_dead_letter(remote, pro, make_indexer, client):
    alice = pro()
    chat = new_chat(alice, "Mixed", ["fine one", "this is POISON text", "fine two"])
    indexer = make_indexer()
    assert indexer.drain()
    good = {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"] if "POISON" not in m["content"]}
    assert set(remote["pinecone"].vectors(ns(alice))) == good  # the rest of the batch went through
    dead = dead_letters()
    assert len(dead) == 1
    fields = dead[0]["fields"]
    poisoned = chat["messages"][1]
    assert fields["messageId"] == poisoned["id"] and fields["attempts"] == "3"
    assert "content filter" in fields["error"] and fields["op"] == "upsert"
    assert index_metrics()["dead"] == 1
    health = client.get("/api/health/").json()["checks"]
    assert health["indexer"]["dead"] == 1 and health["indexer"]["ok"] is False
    assert health["vector_store"]["ok"] is True

    messages.update(alice["id"], poisoned["id"], {"parts": [{"type": "text", "text": "now harmless"}]})
    assert indexer.drain()
    assert retry_dead_letters() == 1
    assert indexer.drain()
    assert dead_letters() == [] and f"msg:{chat['id']}#{poisoned['id']}" in remote["pinecone"].vectors(ns(alice))


def test_a_malformed_entry_is_parked_at_once(remote, make_indexer):
    write = Write()
    outbox.stage(write, "explode", userId="u1")
    outbox.stage(write, "upsert", kind="message", userId="u1", chatId="bad id{}", messageId="m1")
    write.execute()
    indexer = make_indexer()
    assert indexer.drain()
    errors = sorted(d["fields"]["error"] for d in dead_letters())
    assert len(errors) == 2 and all(e.startswith("malformed entry") for e in errors)


def test_entries_of_a_crashed_consumer_are_taken_over(remote, pro, make_indexer):
    alice = pro()
    chat = new_chat(alice, "Crash", ["one", "two", "three"])
    crashed = make_indexer("crashed")
    crashed.start()
    assert len(crashed._read_new(10, 0)) == 3  # read, then "dies" before acking
    assert index_metrics()["pending"] == 3
    survivor = make_indexer("survivor", CLAIM_IDLE_MS=0, CLAIM_EVERY_SECONDS=0)
    assert survivor.drain()
    assert index_metrics()["pending"] == 0
    assert {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]} == set(remote["pinecone"].vectors(ns(alice)))


def test_a_user_leased_by_another_indexer_waits(remote, pro, make_indexer):
    alice, bob = pro("Alice"), pro("Bob")
    new_chat(alice, "A", ["alpha"])
    new_chat(bob, "B", ["bravo"])
    get_redis().set(search_keys.index_lease(alice["id"]), "someone-else", px=60_000)
    indexer = make_indexer()
    assert not indexer.drain(timeout=0.5)
    assert remote["pinecone"].vectors(ns(bob)) and not remote["pinecone"].vectors(ns(alice))
    get_redis().delete(search_keys.index_lease(alice["id"]))
    assert indexer.drain()
    assert remote["pinecone"].vectors(ns(alice))


def test_several_indexers_converge_on_the_redis_state(remote, pro, make_indexer):
    users = [pro("U1"), pro("U2")]
    chats = [new_chat(u, f"chat of {u['name']}", [f"first words of {u['name']}"]) for u in users]
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        indexer = make_indexer(name)
        indexer.start()
        try:
            while not stop.is_set():
                indexer.run_once(block_ms=20)
            indexer.hand_back()  # as run_forever does: entries it still waits to retry go to the others
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(f"worker-{i}",)) for i in range(3)]
    for worker in workers:
        worker.start()
    try:
        for round_number in range(15):
            for user, chat in zip(users, chats, strict=True):
                saved = messages.save(
                    user["id"],
                    [
                        {
                            "chatId": chat["id"],
                            "role": "assistant",
                            "parts": [{"type": "text", "text": f"round {round_number}"}],
                        }
                    ],
                )[0]
                if round_number % 3 == 0:
                    messages.update(
                        user["id"], saved["id"], {"parts": [{"type": "text", "text": f"edited {round_number}"}]}
                    )
                if round_number % 4 == 1:
                    messages.delete_after(user["id"], chat["id"], saved["createdAt"])
    finally:
        time.sleep(0.3)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert not errors
    assert make_indexer("final").drain()
    for user, chat in zip(users, chats, strict=True):
        current = messages.list(user["id"], chat["id"], _page(1000))[0]
        expected = {f"msg:{chat['id']}#{m['id']}": m["content"] for m in current}
        stored = {i: meta["snippet"] for i, (_, meta) in remote["pinecone"].vectors(ns(user)).items()}
        assert stored == expected


def _page(limit: int):
    from storage.managers.paging import PageRequest

    return PageRequest(limit=limit, order="asc")


def test_search_only_sees_the_callers_data(remote, pro, make_indexer, settings):
    alice, bob = pro("Alice"), pro("Bob")
    alice_chat = new_chat(alice, "Alice on gardens", ["how to grow tomatoes in a garden"])
    bob_chat = new_chat(bob, "Bob on gardens", ["how to grow tomatoes in a garden"])
    assert make_indexer().drain()
    found = search_api(alice, "grow tomatoes garden").json()["results"]
    assert [g["chatId"] for g in found] == [alice_chat["id"]]
    assert search_api(alice, "grow tomatoes", chatId=bob_chat["id"]).json()["results"] == []
    # even a record that wrongly sits in Alice's namespace is not shown unless Redis says it is hers
    from storage.search.vectors import VectorRecord, get_vector_store

    vector, metadata = remote["pinecone"].vectors(ns(bob))[f"msg:{bob_chat['id']}#{bob_chat['messages'][0]['id']}"]
    get_vector_store().upsert(
        ns(alice), [VectorRecord(f"msg:{bob_chat['id']}#x", vector, {**metadata, "userId": alice["id"]})]
    )
    found = search_api(alice, "grow tomatoes garden").json()["results"]
    assert [g["chatId"] for g in found] == [alice_chat["id"]]


def test_another_model_is_refused_until_reindex(remote, pro, make_indexer, settings, fake_openai):
    from tests.search.conftest import openai_settings

    alice = pro()
    chat = new_chat(alice, "Languages", ["learning spanish verbs"])
    running = make_indexer(CHECK_INDEX_SECONDS=0)
    assert running.drain()
    settings.MOOKTI_EMBEDDINGS = openai_settings(fake_openai, model="text-embedding-3-large")
    get_redis().hset(search_keys.vector_index_meta(), "model", "openai/text-embedding-3-large@64")
    with pytest.raises(IndexMismatch, match="reindex"):  # a running indexer stops instead of mixing models
        running.run_once(block_ms=0)
    get_redis().hset(search_keys.vector_index_meta(), "model", "openai/text-embedding-3-small@64")
    with pytest.raises(IndexMismatch, match="reindex"):
        make_indexer().drain()
    response = search_api(alice, "spanish")
    assert response.status_code == 503 and "reindex" in response.json()["error"]["message"]
    call_command("reindex", no_progress=True)
    assert make_indexer().drain()
    assert get_redis().hget(search_keys.vector_index_meta(), "model") == "openai/text-embedding-3-large@64"
    found = search_api(alice, "spanish verbs").json()["results"]
    assert [g["chatId"] for g in found] == [chat["id"]]


def test_reindex_rebuilds_one_user_from_redis(remote, pro, make_indexer):
    alice, bob = pro("Alice"), pro("Bob")
    chat = new_chat(alice, "History", ["the roman empire", "the fall of rome"])
    documents.save(alice["id"], document_id=None, title="Essay", kind="text", content="Carthage must be destroyed.")
    new_chat(bob, "Other", ["unrelated"])
    get_redis().delete(mookti_keys.outbox())  # as if the indexer never ran
    remote["pinecone"].reset()
    call_command("reindex", user=[alice["id"]], no_progress=True)
    stored = remote["pinecone"].vectors(ns(alice))
    assert {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]} < set(stored)
    assert len(stored) == 3 and not remote["pinecone"].vectors(ns(bob))


def test_metrics_and_health_report_the_backlog(remote, pro, make_indexer, client):
    alice = pro()
    new_chat(alice, "Backlog", [f"note {i}" for i in range(4)])
    before = client.get("/api/health/").json()["checks"]["indexer"]
    assert before["lag"] == 4 and before["pending"] == 0 and before["dead"] == 0
    indexer = make_indexer()
    indexer.start()
    indexer._read_new(2, 0)
    assert index_metrics()["lag"] == 2 and index_metrics()["pending"] == 2
    assert indexer.drain()
    after = client.get("/api/health/").json()["checks"]
    assert after["indexer"] == {**after["indexer"], "lag": 0, "pending": 0, "ok": True}
    assert after["vector_store"] == {**after["vector_store"], "ok": True, "backend": "pinecone"}


def test_entries_a_lost_read_delivered_are_taken_back_after_an_outage(remote, pro, make_indexer):
    """A read sent as Redis froze: Redis delivers its entries when it resumes, the reply never
    arrives. After the outage the indexer takes them back itself, not a claim period later."""
    pinecone = remote["pinecone"]
    alice = pro()
    indexer = make_indexer(CLAIM_EVERY_SECONDS=3600)
    new_chat(alice, "Warm-up", ["before the freeze"])
    assert indexer.drain()
    chat = new_chat(alice, "Frozen", ["delivered while the reply was lost", "and this one too"])
    lost = get_redis().xreadgroup(GROUP, indexer.consumer, {indexer.stream: ">"}, count=100)  # the lost reply
    assert sum(len(entries) for _, entries in lost) == 2
    indexer._outage([], redis.TimeoutError("Timeout reading from socket"))  # what the indexer saw
    deadline = time.monotonic() + 10  # run as run_forever does (drain() would take them back at its start)
    while index_metrics()["pending"] and time.monotonic() < deadline:
        if not indexer.run_once(block_ms=0):
            time.sleep(0.05)
    expected = {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]}
    assert expected <= set(pinecone.vectors(ns(alice)))
    assert index_metrics() == {**index_metrics(), "lag": 0, "pending": 0, "dead": 0}
