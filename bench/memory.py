"""Redis memory per stored chat message (``MEMORY USAGE``), over a realistic corpus.

    .venv/bin/python -m bench.memory                 # 3 corpora x 800 messages
    .venv/bin/python -m bench.memory --messages 40   # per chat (5 users x 4 chats each)

Messages are saved through ``MessageManager.save`` (the API's path: hash, chat index, id lookup,
outbox entry, ``message.created`` event, gamification for learners' messages), then the outbox
is drained as the indexer leaves it (read and acked by the group, then ``trim_outbox``). Per
message, in bytes:

- ``hash``: its share of the chat's ``message-data`` hash; ``index``: its share of the chat's ZSET;
- ``lookup``: its share of the ``message-chat-ids:{bucket}`` hashes (the corpus's messages over
  ``LOOKUP_BUCKETS`` buckets: a small corpus fills them thinly, see docs/benchmarks.md);
- ``quota``: its share of the user's rate-limit log (learners');
- ``events``: its share of the user's event stream (every event the saves caused);
- ``outbox``: its share of the drained outbox stream;
- ``total`` against the text size: ``x text`` (goal <= 1.5 for 1 KB messages) and
  ``overhead`` = total - text (goal <= 400 for short messages).

Runs on a redis-server of its own, started with the settings ``manage.py serve`` uses
(``mookti.localredis``: AOF, noeviction, ``hash-max-listpack-value 8192``,
``stream-node-max-bytes 2048``); ``--listpack 64``
shows the cost under Redis's default.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.faults import free_port

WORDS = """
fraction numerator denominator equivalent simplify multiply divide common factor whole number decimal
percent ratio proportion example because therefore notice step first next then finally
remember check answer question why how what when the a of to
and is in that it for you
""".split()  # noqa: SIM905 - prose, not a list
USERS, CHATS = 5, 4


@dataclass
class Corpus:
    name: str
    user_bytes: int  # text size of a learner's message
    assistant_bytes: int  # text size of the tutor's answer


CORPORA = [
    Corpus("1 KB messages", 1024, 1024),
    Corpus("short messages", 60, 60),
    Corpus("mixed (100 B questions, 1.5 KB answers)", 100, 1500),
]


def text(size: int, rng: random.Random) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def usage(client: Any, name: str) -> int:
    return int(client.memory_usage(name, samples=0) or 0)


def measure(corpus: Corpus, per_chat: int, rng: random.Random) -> dict[str, float]:
    from mookti import keys as mookti_keys
    from mookti.redis import get_redis
    from storage import keys
    from storage.managers import chats, messages, users
    from storage.search.indexer import GROUP, ensure_group, trim_outbox

    client = get_redis()
    ensure_group(client)
    totals = dict.fromkeys(("hash", "index", "lookup", "quota", "events", "outbox"), 0)
    text_bytes = count = 0
    for _ in range(USERS):
        user = users.create(f"{uuid.uuid4().hex[:10]}@example.com", None, user_type="pro")
        for _ in range(CHATS):
            chat = chats.create(user["id"], title="Fractions")
            saved = []
            for n in range(per_chat):
                role = "user" if n % 2 == 0 else "assistant"
                body = text(corpus.user_bytes if role == "user" else corpus.assistant_bytes, rng)
                text_bytes += len(body.encode())
                parts = [{"type": "text", "text": body}]
                saved += messages.save(user["id"], [{"chatId": chat["id"], "role": role, "parts": parts}])
            totals["hash"] += usage(client, keys.chat_message_data(chat["id"]))
            totals["index"] += usage(client, keys.chat_messages(chat["id"]))
            count += len(saved)
        totals["quota"] += usage(client, keys.user_message_times(user["id"]))
        totals["events"] += usage(client, mookti_keys.events(user["id"]))
    buckets = [keys.message_lookup_bucket(f"{n:02x}") for n in range(keys.LOOKUP_BUCKETS)]
    totals["lookup"] = sum(usage(client, name) for name in buckets)
    stream = mookti_keys.outbox()
    while True:  # drain as the indexer does: read by the group, ack, trim
        batch = client.xreadgroup(GROUP, "bench-memory", {stream: ">"}, count=1000)
        ids = [entry_id for _, entries in batch or [] for entry_id, _ in entries]
        if not ids:
            break
        client.xack(stream, GROUP, *ids)
    trim_outbox(client)
    totals["outbox"] = usage(client, stream)
    per = {name: value / count for name, value in totals.items()}
    per["text"] = text_bytes / count
    per["total"] = sum(per[name] for name in totals)
    per["ratio"] = per["total"] / per["text"]
    per["overhead"] = per["total"] - per["text"]
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=40, help="messages per chat (5 users x 4 chats)")
    parser.add_argument("--listpack", type=int, default=0, help="hash-max-listpack-value to run with (0: ours)")
    args = parser.parse_args()
    prefix = "bench-memory:"
    os.environ["MOOKTI_REDIS_PREFIX"] = prefix
    from mookti import localredis

    with tempfile.TemporaryDirectory(prefix="mookti-memory-") as tmp:
        url = f"redis://127.0.0.1:{free_port()}/0"
        server = localredis.start(url, Path(tmp))
        os.environ["REDIS_URL"] = os.environ["CHANNEL_REDIS_URL"] = url
        try:
            run(args.messages, args.listpack)
        finally:
            localredis.stop(server)


def run(per_chat: int, listpack: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
    os.environ.setdefault("MOOKTI_LIMIT_PRO", "1000000")
    os.environ.setdefault("MOOKTI_EVENTS_MAXLEN", "100000")  # the stream's cap must not hide its cost
    import django

    django.setup()
    from mookti.redis import delete_prefix, get_redis

    if listpack:
        get_redis().config_set("hash-max-listpack-value", listpack)
    prefix = os.environ["MOOKTI_REDIS_PREFIX"]
    rng = random.Random(13)
    columns = ("text", "hash", "index", "lookup", "quota", "events", "outbox", "total", "ratio", "overhead")
    setting = get_redis().config_get("hash-max-listpack-value")["hash-max-listpack-value"]
    print(f"bytes per message, {USERS * CHATS * per_chat} messages per corpus, hash-max-listpack-value {setting}")
    print(f"{'corpus':<42}" + "".join(f"{name:>9}" for name in columns))
    try:
        for corpus in CORPORA:
            per = measure(corpus, per_chat, rng)
            cells = "".join(f"{per[name]:>9.2f}" if name == "ratio" else f"{per[name]:>9.0f}" for name in columns)
            print(f"{corpus.name:<42}{cells}")
            delete_prefix(prefix)
    finally:
        delete_prefix(prefix)


if __name__ == "__main__":
    main()
