"""Live-update benchmark: many websockets on one server process, events written through the API.

    .venv/bin/python bench/ws.py [--sockets 1000] [--per-user 2] [--rate 100] [--seconds 20]
                                 [--reconnects 100] [--offline 1.0]

Starts one uvicorn process (``bench.api.Server``: a unique ``MOOKTI_REDIS_PREFIX``, rate limits
off), seeds ``sockets / per-user`` users with a token and a chat each, and opens ``--sockets``
websockets (bearer subprotocol), ``--per-user`` per user. Then, for ``--seconds``, it posts
messages through ``POST /api/storage/message`` at ``--rate`` per second (open loop, random
users, keep-alive HTTP clients) and measures, on every socket of the message's owner, when the
``message.created`` frame arrives: delivery latency counts from the event's commit (its stream
id is Redis' clock at the XADD; client, server and Redis share this machine's clock),
end-to-end latency from sending the API request (so it includes the API's own time).

Meanwhile ``--reconnects`` sockets (spread over the run) disconnect, stay away ``--offline``
seconds while the writes go on, and reconnect with ``lastEventId``: the replay must bring
exactly what they missed. At the end every socket must have received every event of its user
exactly once, in stream order: "lost" counts deliveries that never came, "duplicates" and
"out of order" what came twice or backwards. Live latency excludes replayed events (those
waited for the reconnect by design); their replay time is reported separately.

Prints its figures; the goal is p99 delivery under 250 ms at 1,000 sockets and 0 lost. All
keys under the run's prefix are deleted at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Connection, Server, create_user, expect, percentile, process_usage

HTTP_CLIENTS = 16
CONNECT_CONCURRENCY = 50
DRAIN_TIMEOUT = 15.0
GOAL_P99_MS = 250.0


def stream_position(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class User:
    id: str
    token: str
    chat_id: str
    sockets: list[Socket] = field(default_factory=list)


@dataclass
class Socket:
    """One client socket: what it received, across reconnects."""

    user: User
    port: int
    ws: ClientConnection | None = None
    last_id: str | None = None
    received: dict[str, int] = field(default_factory=dict)  # message id -> times received
    out_of_order: int = 0
    replayed: int = 0
    reader: asyncio.Task | None = None

    async def open(self, ready_times: list[float] | None = None) -> None:
        url = f"ws://127.0.0.1:{self.port}/ws/events/"
        if self.last_id:
            url += f"?lastEventId={self.last_id}"
        started = time.perf_counter()
        self.ws = await connect(url, subprotocols=["mookti.bearer", self.user.token], open_timeout=30, max_queue=None)  # type: ignore[list-item]
        replaying = self.last_id is not None
        while True:
            frame = json.loads(await self.ws.recv())
            if frame["type"] == "ready":
                self.last_id = frame["lastEventId"]
                break
            if replaying and "id" in frame:
                self.replayed += 1
                self.take(frame, None)
            elif frame["type"] == "resync":
                raise SystemExit("resync during the benchmark: the stream lost history")
        if ready_times is not None:
            ready_times.append(time.perf_counter() - started)

    def take(self, frame: dict, run: Run | None) -> None:
        """Count a frame; ``run`` (live frames only) records its latencies."""
        position = stream_position(frame["id"])
        if self.last_id and position <= stream_position(self.last_id):
            self.out_of_order += 1
        self.last_id = frame["id"]
        message_id = frame["data"].get("id")
        self.received[message_id] = self.received.get(message_id, 0) + 1
        if run is not None and message_id in run.sent_at:
            run.end_to_end.append(time.perf_counter() - run.sent_at[message_id])
            run.delivery.append(time.time() - position[0] / 1000)  # the stream id is Redis' clock at XADD

    async def read(self, run: Run) -> None:
        try:
            async for raw in self.ws:  # type: ignore[union-attr]
                frame = json.loads(raw)
                if "id" in frame:
                    self.take(frame, run)
                elif frame["type"] == "resync":
                    raise SystemExit("resync during the benchmark")
        except asyncio.CancelledError:
            pass


@dataclass
class Run:
    users: list[User]
    sent_at: dict[str, float] = field(default_factory=dict)
    owner: dict[str, User] = field(default_factory=dict)
    api_latencies: list[float] = field(default_factory=list)
    api_errors: int = 0
    end_to_end: list[float] = field(default_factory=list)
    delivery: list[float] = field(default_factory=list)
    ready_times: list[float] = field(default_factory=list)
    reconnects: int = 0

    @property
    def sockets(self) -> list[Socket]:
        return [s for u in self.users for s in u.sockets]


async def seed(server: Server, count: int) -> list[User]:
    users: list[User] = []

    async def worker(numbers: list[int]) -> None:
        connection = Connection(server.port)
        for number in numbers:
            user_id, token = await create_user(connection, server, "ws-bench", number)
            auth = {"Authorization": f"Bearer {token}"}
            chat = expect(await connection.request("POST", "/api/storage/chat", {"title": "Bench"}, auth), 201, "chat")
            users.append(User(user_id, token, chat["id"]))
        await connection.close()

    numbers = list(range(count))
    await asyncio.gather(*(worker(numbers[i::HTTP_CLIENTS]) for i in range(HTTP_CLIENTS)))
    return users


async def open_sockets(run: Run, port: int, per_user: int) -> float:
    for user in run.users:
        user.sockets = [Socket(user, port) for _ in range(per_user)]
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(sock: Socket) -> None:
        async with limit:
            await sock.open()
        sock.reader = asyncio.create_task(sock.read(run))

    started = time.perf_counter()
    await asyncio.gather(*(open_one(s) for s in run.sockets))
    return time.perf_counter() - started


async def write_load(run: Run, port: int, rate: float, seconds: float) -> int:
    """Open loop: a message every 1/rate seconds, whatever the server's latency."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(HTTP_CLIENTS):
        idle.put_nowait(Connection(port))
    tasks = []

    async def post(user: User) -> None:
        message_id = str(uuid.uuid4())
        parts = [{"type": "text", "text": "7 x 8 = 56"}]
        body = {"id": message_id, "chatId": user.chat_id, "role": "assistant", "parts": parts}
        connection = await idle.get()
        run.owner[message_id] = user
        run.sent_at[message_id] = started = time.perf_counter()
        try:
            reply = await connection.request(
                "POST", "/api/storage/message", body, {"Authorization": f"Bearer {user.token}"}
            )
        finally:
            idle.put_nowait(connection)
        run.api_latencies.append(time.perf_counter() - started)
        if reply.status != 201:
            run.api_errors += 1
            del run.owner[message_id]

    begin = time.perf_counter()
    count = int(rate * seconds)
    for index in range(count):
        delay = begin + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(random.choice(run.users))))
    await asyncio.gather(*tasks)
    while not idle.empty():
        await idle.get_nowait().close()
    return count


async def reconnect_load(run: Run, count: int, seconds: float, offline: float) -> None:
    """Close ``count`` random sockets over the run; each comes back after ``offline`` s with its last id."""
    if not count:
        return
    chosen = random.sample(run.sockets, min(count, len(run.sockets)))
    gap = max(0.0, seconds - offline - 1.0) / len(chosen)

    async def cycle(sock: Socket) -> None:
        sock.reader.cancel()  # type: ignore[union-attr]
        await sock.ws.close()  # type: ignore[union-attr]
        await asyncio.sleep(offline)
        await sock.open(run.ready_times)
        sock.reader = asyncio.create_task(sock.read(run))
        run.reconnects += 1

    cycles = []
    for sock in chosen:
        cycles.append(asyncio.create_task(cycle(sock)))
        await asyncio.sleep(gap)
    await asyncio.gather(*cycles)


def tally(run: Run) -> tuple[int, int, int, int]:
    """(expected deliveries, lost, duplicates, out of order)."""
    expected = lost = duplicates = 0
    for message_id, user in run.owner.items():
        for sock in user.sockets:
            expected += 1
            times = sock.received.get(message_id, 0)
            lost += times == 0
            duplicates += max(0, times - 1)
    return expected, lost, duplicates, sum(s.out_of_order for s in run.sockets)


async def drain(run: Run) -> None:
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while time.perf_counter() < deadline and tally(run)[1]:
        await asyncio.sleep(0.1)


async def bench(args: argparse.Namespace) -> bool:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.sockets + 1024)), hard))
    users_count = max(1, args.sockets // args.per_user)
    with tempfile.TemporaryDirectory() as data_dir:
        server = Server.start(1, args.redis_url, Path(data_dir))
        try:
            await server.wait_ready()
            started = time.perf_counter()
            users = await seed(server, users_count)
            print(f"seeded {len(users)} users in {time.perf_counter() - started:.1f}s", flush=True)
            run = Run(users)
            opened_in = await open_sockets(run, server.port, args.per_user)
            print(f"opened {len(run.sockets)} sockets in {opened_in:.1f}s", flush=True)
            cpu_before, _ = process_usage(server.process.pid)
            load_started = time.perf_counter()
            writes, _ = await asyncio.gather(
                write_load(run, server.port, args.rate, args.seconds),
                reconnect_load(run, args.reconnects, args.seconds, args.offline),
            )
            load_seconds = time.perf_counter() - load_started
            await drain(run)
            cpu_after, rss = process_usage(server.process.pid)
            expected, lost, duplicates, out_of_order = tally(run)
            for sock in run.sockets:
                sock.reader.cancel()  # type: ignore[union-attr]
                await sock.ws.close()  # type: ignore[union-attr]
        finally:
            server.stop()
            removed = server.delete_keys()

    live = [x * 1000 for x in run.delivery]
    end_to_end = [x * 1000 for x in run.end_to_end]
    api = [x * 1000 for x in run.api_latencies]
    ready = [x * 1000 for x in run.ready_times]
    replayed = sum(s.replayed for s in run.sockets)
    print()
    print(f"sockets                 {len(run.sockets)} ({users_count} users x {args.per_user}), one uvicorn process")
    achieved = writes / load_seconds
    print(f"API writes              {writes} in {load_seconds:.1f}s ({achieved:.0f}/s), errors {run.api_errors}")
    print(f"API latency             p50 {percentile(api, 0.5):.1f} ms  p99 {percentile(api, 0.99):.1f} ms")
    print(f"deliveries expected     {expected}")
    print(
        f"delivery latency        p50 {percentile(live, 0.5):.1f} ms  p99 {percentile(live, 0.99):.1f} ms"
        f"  max {max(live, default=0):.1f} ms  ({len(live)} live frames, event committed -> frame received)"
    )
    print(
        f"end-to-end latency      p50 {percentile(end_to_end, 0.5):.1f} ms  p99 {percentile(end_to_end, 0.99):.1f} ms"
        f"  max {max(end_to_end, default=0):.1f} ms  (API request sent -> frame received)"
    )
    print(f"reconnects with replay  {run.reconnects} (offline {args.offline:.1f}s each), {replayed} events replayed")
    print(f"reconnect -> ready      p50 {percentile(ready, 0.5):.1f} ms  p99 {percentile(ready, 0.99):.1f} ms")
    print(f"events lost             {lost}")
    print(f"duplicates              {duplicates}")
    print(f"out of order            {out_of_order}")
    print(f"server CPU during load  {cpu_after - cpu_before:.1f}s over {load_seconds:.1f}s, RSS {rss:.0f} MB")
    print(f"keys removed            {removed}")
    ok = lost == 0 and duplicates == 0 and out_of_order == 0 and percentile(live, 0.99) < GOAL_P99_MS
    print(f"goal (p99 < {GOAL_P99_MS:.0f} ms, 0 lost, 0 duplicates, in order): {'met' if ok else 'NOT met'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=2, help="sockets per user (tabs/devices)")
    parser.add_argument("--rate", type=float, default=100.0, help="API writes per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reconnects", type=int, default=100, help="sockets that drop and resume during the run")
    parser.add_argument("--offline", type=float, default=1.0, help="seconds a dropped socket stays away")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(0 if asyncio.run(bench(args)) else 1)


if __name__ == "__main__":
    main()
