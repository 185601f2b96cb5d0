"""Redis footprint of an idle deployment: the commands it sends with no traffic, and per open socket.

    .venv/bin/python bench/idle.py [--minutes 3] [--sockets 20] [--warmup 30] [--price-per-100k 0.2]

On a managed Redis billed per command (Upstash: every command counts, PINGs and blocking reads
included) the idle cost is what a deployment pays with no users. This bench starts a
``redis-server`` of its own on a free port (so nothing else adds commands), then the service as
``manage.py serve`` with 1 web process and 1 indexer, its data and channel layer on that Redis.

1. **idle**: after ``--warmup`` seconds (the indexer loads its model, start-up commands settle),
   the ``INFO commandstats`` delta over ``--minutes``, no client connected.
2. **sockets**: ``--sockets`` websockets (bearer subprotocol, one user each, created through the
   API) are opened and wait until ``ready``; then the delta over ``--minutes`` again, the clients
   only reading (heartbeats). Per socket = (this phase - the idle rate) / sockets.

The bench's own ``INFO`` calls are left out of the counts. Prints a table per phase (commands per
minute, the top commands), the goals (idle <= 6/min, <= 1/min per socket) and a month's cost at
``--price-per-100k`` dollars per 100,000 commands. Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import HOST, Connection, Server, create_user, free_port

GOAL_IDLE_PER_MINUTE = 6.0
GOAL_SOCKET_PER_MINUTE = 1.0
MINUTES_PER_MONTH = 30 * 24 * 60


def start_redis(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """A private redis-server (no persistence) on a free port; its URL."""
    if not shutil.which("redis-server"):
        raise SystemExit("bench/idle.py needs redis-server (apt-get install redis-server)")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(argv, cwd=data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://{HOST}:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                return process, url
        time.sleep(0.05)
    raise SystemExit(f"redis-server did not start on port {port}")


def command_counts(client: redis.Redis) -> Counter:
    """Calls per command so far, without the INFO this reading itself adds (counted after it runs)."""
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})


async def measure(client: redis.Redis, minutes: float) -> Counter:
    before = command_counts(client)
    await asyncio.sleep(minutes * 60)
    delta = command_counts(client) - before
    delta["info"] -= 1  # the reading before this one
    return +delta


async def open_socket(port: int, token: str) -> ClientConnection:
    ws = await connect(f"ws://{HOST}:{port}/ws/events/", subprotocols=["mookti.bearer", token], open_timeout=30)
    while '"ready"' not in await ws.recv():
        pass
    return ws


async def keep_reading(ws: ClientConnection) -> None:
    """Read (and so answer the server's pings) until closed; the frames are heartbeats."""
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


def report(name: str, counts: Counter, minutes: float, per: int = 1, baseline: float = 0.0) -> float:
    total = sum(counts.values())
    rate = (total / minutes - baseline) / per
    top = ", ".join(f"{command} {calls}" for command, calls in counts.most_common(8)) or "none"
    print(f"{name:<22} {total:>8} {total / minutes:>10.1f} {rate:>12.2f}   {top}")
    return rate


async def run(args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="mookti-idle-") as tmp:
        data_dir = Path(tmp)
        redis_process, url = start_redis(data_dir)
        client = redis.Redis.from_url(url, decode_responses=True)
        server = Server.start(
            1,
            url,
            data_dir,
            supervised=True,
            indexers=1,
            settings_module="mookti.settings",
            extra_env={"CHANNEL_REDIS_URL": url},
        )
        sockets: list[ClientConnection] = []
        readers: list[asyncio.Task] = []
        try:
            await server.wait_ready()
            await asyncio.sleep(args.warmup)
            print(f"redis-server {url}, manage.py serve (1 web, 1 indexer) on port {server.port}")
            print(f"{'phase':<22} {'commands':>8} {'per minute':>10} {'per min/unit':>12}   top commands")
            idle = report("idle deployment", await measure(client, args.minutes), args.minutes)
            connection = Connection(server.port)
            for number in range(args.sockets):
                _, token = await create_user(connection, server, "idle", number)
                sockets.append(await open_socket(server.port, token))
            await connection.close()
            readers = [asyncio.create_task(keep_reading(ws)) for ws in sockets]
            await asyncio.sleep(5)  # the connect commands settle (auth, subscribe, replay head)
            counts = await measure(client, args.minutes)
            per_socket = report(f"{args.sockets} idle sockets", counts, args.minutes, args.sockets, idle)
        finally:
            for ws in sockets:
                with contextlib.suppress(Exception):
                    await ws.close()
            for reader in readers:
                reader.cancel()
            server.stop()
            client.close()
            redis_process.terminate()
            redis_process.wait()
    price = args.price_per_100k / 100_000
    print(f"minutes per phase {args.minutes:g}; goals: idle <= {GOAL_IDLE_PER_MINUTE:g}/min, socket <= 1/min")
    for what, rate in (("idle deployment", idle), ("one idle socket", per_socket)):
        month = rate * MINUTES_PER_MONTH
        print(f"{what:<22} {rate:6.2f}/min = {month:>10,.0f} commands/month = ${month * price:,.2f}/month")
    return idle <= GOAL_IDLE_PER_MINUTE and per_socket <= GOAL_SOCKET_PER_MINUTE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each measured phase")
    parser.add_argument("--sockets", type=int, default=20, help="idle websockets in the second phase")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds after start before measuring")
    parser.add_argument("--price-per-100k", type=float, default=0.2, help="dollars per 100,000 commands")
    sys.exit(0 if asyncio.run(run(parser.parse_args())) else 1)


if __name__ == "__main__":
    main()
