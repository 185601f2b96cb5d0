"""Redis restarted in the middle of a write burst: every acknowledged write survives, indexes stay whole."""

from __future__ import annotations

import threading
import time

from mookti import localredis
from mookti.redis import REDIS_ERRORS, get_redis
from storage import keys
from storage.managers import chats, messages, users

WRITERS = 6


def test_acknowledged_writes_survive_a_restart(private_redis, settings):
    settings.MOOKTI_MESSAGE_LIMITS = {**settings.MOOKTI_MESSAGE_LIMITS, "free": 100_000}
    user = users.create("burst@example.com", "pw-123456")
    chat = chats.create(user["id"], title="burst")
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                saved = messages.save(
                    user["id"], [{"chatId": chat["id"], "role": "user", "parts": [], "content": f"{n}-{i}"}]
                )
            except REDIS_ERRORS as exc:
                with lock:
                    failures.append(type(exc).__name__)
                time.sleep(0.05)
                continue
            with lock:
                acknowledged.append(saved[0]["id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    time.sleep(0.7)
    localredis.stop(private_redis["process"])  # SIGTERM: Redis fsyncs its AOF and exits
    time.sleep(0.5)
    private_redis["process"] = localredis.start(private_redis["url"], private_redis["dir"])
    time.sleep(0.7)
    stop.set()
    for thread in threads:
        thread.join()

    assert len(acknowledged) > 50 and failures, (len(acknowledged), failures[:3])
    client = get_redis()
    indexed = set(client.zrange(keys.chat_messages(chat["id"]), 0, -1))
    assert set(acknowledged) <= indexed, "an acknowledged message was lost"
    stored = set(client.hkeys(keys.chat_message_data(chat["id"])))
    assert indexed <= stored, "index entry without its message"
    assert stored == indexed, "message without its index entry"
    assert client.config_get("appendonly")["appendonly"] == "yes"
