"""API benchmark: DRF endpoints against bare Django views doing the same Redis work.

    .venv/bin/python bench/api.py [--concurrency 16] [--seconds 5] [--workers 1] [--rounds 2]

Starts uvicorn (``mookti.asgi:application`` with ``DJANGO_SETTINGS_MODULE=bench.settings``) on
a free port with a unique ``MOOKTI_REDIS_PREFIX``, seeds one user per client (token, 25 chats, a
chat of 60 messages), then drives each operation with ``--concurrency`` keep-alive HTTP/1.1
clients for ``--seconds``: create chat, post message, list 20 chats, read 50 messages, each
through the DRF API and through the bare view (``bench/bare_urls.py``). Rounds alternate the
order (DRF first, then bare first) so drift on a busy machine hits both alike.

Redis round trips are counted inside the server (``bench/roundtrips.py``): every request's
response carries how many times redis-py sent something to Redis while serving it (a pipeline
or MULTI/EXEC is one; auth included; the usual value is shown, with the max and the share of
requests above it, e.g. when a request opens a new Redis connection). "pokes" are the
live-update channel-layer messages the request handed to the background publisher: one
PUBLISH each, sent after the response, so not on the request's path.

The clients are a minimal asyncio HTTP/1.1 implementation, so that the client's own CPU cost
(it shares the machine's cores with the server) stays small next to the server's. All keys under
the prefix are deleted at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import HOST, Connection, Reply, Server, create_user, expect, percentile

SEED_CHATS = 25
SEED_MESSAGES = 60
ROUNDTRIP_GOAL = 3
RATIO_GOAL = 0.5


# --- seeding ------------------------------------------------------------------------------------
@dataclass
class User:
    id: str
    token: str
    post_chat: str = ""
    read_chat: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def text_message(chat_id: str, index: int) -> dict[str, Any]:
    role = "user" if index % 2 == 0 else "assistant"
    return {"chatId": chat_id, "role": role, "parts": [{"type": "text", "text": f"Message {index}: what is 7 x 8?"}]}


async def seed_user(server: Server, number: int) -> User:
    connection = Connection(server.port)
    user = User(*await create_user(connection, server, "bench", number))
    chat_ids = []
    for index in range(SEED_CHATS + 2):
        reply = await connection.request("POST", "/api/storage/chat", {"title": f"Chat {index}"}, user.auth)
        chat_ids.append(expect(reply, 201, "chat")["id"])
    user.post_chat, user.read_chat = chat_ids[0], chat_ids[1]
    batch = {"messages": [text_message(user.read_chat, i) for i in range(SEED_MESSAGES)]}
    expect(await connection.request("POST", "/api/storage/message", batch, user.auth), 201, "messages")
    await connection.close()
    return user


# --- operations ---------------------------------------------------------------------------------
FLAVORS = ("DRF", "bare")


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    drf_path: str
    bare_path: str
    expected: int

    def request(self, flavor: str, user: User) -> tuple[str, str, Any]:
        path = (self.drf_path if flavor == "DRF" else self.bare_path).format(user=user)
        body = None
        if self.name == "create chat":
            body = {"title": "Fractions, step by step"}
        elif self.name == "post message":
            body = text_message(user.post_chat, 0)
        return self.method, path, body


OPERATIONS = [
    Operation("create chat", "POST", "/api/storage/chat", "/bench/bare/chat", 201),
    Operation("post message", "POST", "/api/storage/message", "/bench/bare/message", 201),
    Operation("list 20 chats", "GET", "/api/storage/chat?limit=20", "/bench/bare/chat?limit=20", 200),
    Operation(
        "read 50 messages",
        "GET",
        "/api/storage/message?chatId={user.read_chat}&limit=50",
        "/bench/bare/message?chatId={user.read_chat}&limit=50",
        200,
    ),
]


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)
    roundtrips: Counter = field(default_factory=Counter)
    pokes: Counter = field(default_factory=Counter)

    def record(self, latency: float, reply: Reply, expected: int) -> None:
        self.latencies.append(latency)
        if reply.status != expected:
            self.errors[reply.status] += 1
        sync = int(reply.headers.get("x-redis-roundtrips", -1))
        asynchronous = int(reply.headers.get("x-redis-roundtrips-async", 0))
        self.roundtrips[sync + asynchronous] += 1
        self.pokes[int(reply.headers.get("x-redis-pokes", -1))] += 1

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        return percentile(self.latencies, share) * 1000


async def drive(server: Server, users: list[User], op: Operation, flavor: str, seconds: float, stats: Stats) -> None:
    """Every user's client sends ``op`` back to back until ``seconds`` have passed."""
    deadline = time.perf_counter() + seconds

    async def client(user: User) -> None:
        connection = Connection(server.port)
        try:
            while time.perf_counter() < deadline:
                method, path, body = op.request(flavor, user)
                started = time.perf_counter()
                reply = await connection.request(method, path, body, user.auth)
                stats.record(time.perf_counter() - started, reply, op.expected)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(user) for user in users))
    stats.seconds += time.perf_counter() - started


def usual(counts: Counter) -> int:
    """The most common value (a request that opens a new Redis connection adds its handshake)."""
    return counts.most_common(1)[0][0] if counts else -1


def spread(counts: Counter) -> str:
    """Round trips per request: the usual value; if some requests took more, the max and their share."""
    if not counts:
        return "-"
    typical = usual(counts)
    above = sum(n for value, n in counts.items() if value > typical)
    if not above:
        return str(typical)
    return f"{typical} (max {max(counts)}, {above / sum(counts.values()):.1%})"


def report(results: dict[tuple[str, str], Stats], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.concurrency} concurrent clients, {args.workers} web process(es), "
        f"{args.rounds} round(s) x {args.seconds:g}s per operation and implementation"
    )
    header = f"{'operation':<18}{'impl':<6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    header += f"{'redis round trips':>24}{'pokes':>7}{'DRF/bare':>10}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for op in OPERATIONS:
        drf, bare = results[(op.name, "DRF")], results[(op.name, "bare")]
        ratio = drf.rate / bare.rate if bare.rate else 0.0
        for flavor, stats in (("DRF", drf), ("bare", bare)):
            line = f"{op.name:<18}{flavor:<6}{stats.rate:>9.0f}"
            line += f"{stats.percentile(0.5):>9.1f}{stats.percentile(0.99):>9.1f}{sum(stats.errors.values()):>8}"
            line += f"{spread(stats.roundtrips):>24}{spread(stats.pokes):>7}"
            line += f"{ratio:>10.2f}" if flavor == "DRF" else ""
            print(line)
        trips, pokes = usual(drf.roundtrips), usual(drf.pokes)
        verdicts.append(
            f"  {op.name:<18} round trips <= {ROUNDTRIP_GOAL}: {'yes' if trips <= ROUNDTRIP_GOAL else 'NO'} "
            f"({trips}, and {pokes} live-update poke(s) sent after the response); "
            f"DRF >= {RATIO_GOAL:.0%} of bare: {'yes' if ratio >= RATIO_GOAL else 'NO'} ({ratio:.2f})"
        )
        for flavor, stats in (("DRF", drf), ("bare", bare)):
            if stats.errors:
                verdicts.append(f"  {op.name} {flavor}: unexpected statuses {dict(stats.errors)}")
    print("\nGoals")
    print("\n".join(verdicts))


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="mookti-bench-") as data_dir:
        server = Server.start(args.workers, args.redis_url, Path(data_dir))
        try:
            await server.wait_ready()
            print(f"uvicorn on {HOST}:{server.port}, prefix {server.prefix}, Redis {server.redis_url}; seeding...")
            users = list(await asyncio.gather(*(seed_user(server, n) for n in range(args.concurrency))))
            results = {(op.name, flavor): Stats() for op in OPERATIONS for flavor in FLAVORS}
            for op in OPERATIONS:
                for flavor in FLAVORS:  # warm-up: connections, pools, code paths
                    await drive(server, users, op, flavor, args.warmup, Stats())
                for round_number in range(args.rounds):
                    for flavor in FLAVORS if round_number % 2 == 0 else FLAVORS[::-1]:
                        await drive(server, users, op, flavor, args.seconds, results[(op.name, flavor)])
                stats = results[(op.name, "DRF")], results[(op.name, "bare")]
                print(f"  {op.name}: DRF {stats[0].rate:.0f} req/s, bare {stats[1].rate:.0f} req/s")
            report(results, args)
        finally:
            server.stop()
            print(f"\nremoved {server.delete_keys()} keys under {server.prefix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (one user each)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per operation, impl and round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each operation")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per operation (alternating DRF/bare order)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
