"""Redis round trips per request, counted the way ``bench/api.py`` counts them (``bench.roundtrips``).

The request paths the benchmark drives stay within 3 round trips, auth included, whatever the
page size. Counts, not timings: a pipeline or MULTI/EXEC is one round trip.
"""

from __future__ import annotations

import pytest

from bench import roundtrips
from gamification.managers import engine
from mookti import events
from mookti.redis import Write, get_redis, key, pipeline
from storage.managers import chats, messages

BUDGET = 3


@pytest.fixture(scope="module", autouse=True)
def counter():
    roundtrips.install()
    roundtrips.count_pokes()
    yield
    roundtrips.uninstall()


def counted(call) -> tuple[object, int]:
    """(result, round trips) of ``call()``, after one warm-up call (connections already open)."""
    call()
    engine.flush_background()  # its work after the warm-up must not hold a pooled connection
    with roundtrips.counting() as holder:
        result = call()
    return result, holder[0] + holder[1]


def test_a_pipeline_or_transaction_is_one_round_trip():
    name = key("ops-test:counter")
    client = get_redis()
    client.ping()  # open the connection first: its handshake (HELLO, CLIENT SETINFO, ...) counts too
    with roundtrips.counting() as holder:
        client.get(name)
        pipe = pipeline()
        for _ in range(50):
            pipe.hgetall(name)
        pipe.execute()
        write = Write()
        write.step(lambda p: p.set(name, "1"))
        write.step(lambda p: p.delete(name))
        write.execute()
    assert holder == [3, 0, 0]


@pytest.fixture
def seeded(alice):
    chat_ids = [chats.create(alice["id"], title=f"Chat {n}")["id"] for n in range(25)]
    read_chat = chat_ids[0]
    text = [{"type": "text", "text": "Seven eights are fifty-six."}]
    messages.save(alice["id"], [{"chatId": read_chat, "role": "assistant", "parts": text} for _ in range(100)])
    return alice, read_chat


def test_list_20_chats(seeded):
    alice, _ = seeded
    response, trips = counted(lambda: alice["api"].get("/api/storage/chat", {"limit": 20}))
    assert response.status_code == 200 and len(response.json()["chats"]) == 20
    assert trips <= BUDGET


@pytest.mark.parametrize("limit", [1, 50, 100])
def test_read_messages_independent_of_page_size(seeded, limit):
    alice, chat_id = seeded
    response, trips = counted(lambda: alice["api"].get("/api/storage/message", {"chatId": chat_id, "limit": limit}))
    assert response.status_code == 200 and len(response.json()["messages"]) == limit
    assert trips <= BUDGET


def test_create_chat(alice):
    response, trips = counted(lambda: alice["api"].post("/api/storage/chat", {"title": "Fractions"}))
    assert response.status_code == 201
    assert trips <= BUDGET


def post_message(user, chat_id, role):
    body = {"chatId": chat_id, "role": role, "parts": [{"type": "text", "text": "What is 7 x 8?"}]}
    return lambda: user["api"].post("/api/storage/message", body)


def test_post_assistant_message(seeded):
    alice, chat_id = seeded
    response, trips = counted(post_message(alice, chat_id, "assistant"))
    assert response.status_code == 201
    assert trips <= BUDGET


def test_post_learner_message(seeded):
    """The activity is recorded in the message's own MULTI; its derived events follow after the response."""
    alice, chat_id = seeded
    response, trips = counted(post_message(alice, chat_id, "user"))
    assert response.status_code == 201
    assert trips <= BUDGET
    engine.flush_background()
    assert any(event_type == "xp.awarded" for _, event_type, _ in events.read(alice["id"])[-20:])
