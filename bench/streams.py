"""Resumable streams and conditional GETs on one web process (issue 18).

Starts one uvicorn process (``bench.settings``: Redis round trips in a response header), prints the
load average (the machine may be shared), then:

1. ``--streams`` streams at ``--rate`` chunks/s each, appended in batches every ``--batch-ms`` for
   ``--seconds``, spread over ``--chats`` chats (a chat's streams share its hash slot), each
   followed by one SSE reader on the web process (all connected before the first append).
   ``--via redis`` (default) appends from this process with the API's own Lua script (EVALSHA,
   one command per batch; the batches due in the same tenth of an interval share one pipeline),
   so the web process only serves the readers: on a 2-core box one Python process cannot also
   take thousands of append requests per second; ``--via http`` posts every batch to the API.
   Then every stream is ended through the API. Prints chunks sent (and the rate reached),
   received, lost, duplicated, gaps, readers that never saw the end; delivery latency (append
   sent -> chunk read by its reader) p50/p99/max; CPU of the web process and of the bench. Readers
   get at most ``--grace`` seconds to connect and to finish: the run is bounded.
2. The Redis round trips of an append request (auth included), from 50 appends over HTTP.
3. A 50-message page fetched ``--pages`` times in full and as a 304 (``If-None-Match``): server CPU
   per answer of each, and the ratio (``--pages 0`` skips it); then the same under load (wrk,
   ``--connections``, 2 rounds of ``--wrk-seconds`` each, alternating), where the fixed cost of
   waking an idle server per request is shared.

Exit status 1 when chunks were lost, duplicated or skipped, or a reader failed.

Usage: ``.venv/bin/python bench/streams.py [--streams 500 --rate 20 --batch-ms 100 --seconds 10 --via redis]``;
``--parts pages`` runs part 3 alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import HOST, Connection, Server, create_user, expect, percentile, process_usage

# Requests in flight at once, as a webapp's HTTP client pool would allow (500 simultaneous requests
# would exceed the web process's Redis connection pool).
HTTP_GATE = asyncio.Semaphore(64)
TICKS = 10  # appends due in the same tenth of a batch interval go out in one pipeline (--via redis)


@dataclass
class Reader:
    """What one SSE reader saw: chunks in order, duplicates, gaps, the end."""

    received: int = 0
    last: int = 0
    duplicated: int = 0
    gaps: int = 0
    end: str | None = None
    error: str | None = None


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    readers: dict[str, Reader] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    connected: int = 0
    all_connected: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)
    roundtrips: list[int] = field(default_factory=list)


async def follow(port: int, stream_id: str, auth: dict[str, str], run: Run, total: int) -> None:
    """Read one stream's SSE answer to its end: per chunk its delivery latency (its text starts with
    the time it was appended), its position (``id:``) against the last one: duplicates, gaps."""
    reader = run.readers[stream_id] = Reader()
    head = [f"GET /api/storage/stream/{stream_id} HTTP/1.1", f"Host: {HOST}", *(f"{k}: {v}" for k, v in auth.items())]
    writer = None
    try:
        async with HTTP_GATE:  # connecting readers are requests in flight too, until their headers arrive
            stream, writer = await asyncio.open_connection(HOST, port)
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            status = (await stream.readline()).split()[1]
            while (await stream.readline()) not in (b"\r\n", b""):
                pass
        if status != b"200":
            reader.error = f"HTTP {status.decode()}"
    except (OSError, IndexError) as exc:
        reader.error = repr(exc)
    run.connected += 1
    if run.connected == total:
        run.all_connected.set()
    if reader.error:
        run.errors.append(f"follow {stream_id}: {reader.error}")
        if writer is not None:
            writer.close()
        return
    rest, position = b"", 0
    try:
        while reader.end is None and (data := await stream.read(1 << 16)):
            now = time.time()
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            for line in lines:  # the chunked framing lines ("1a\r", "\r") match nothing below
                if line.startswith(b"id: "):
                    position = int(line[4:])
                elif line.startswith(b'data: "'):
                    run.latencies.append(now - float(line[7 : line.index(b"|")]))
                    if position == reader.last + 1:
                        reader.received, reader.last = reader.received + 1, position
                    elif position <= reader.last:
                        reader.duplicated += 1
                    else:
                        reader.gaps += 1
                        reader.received, reader.last = reader.received + 1, position
                elif line.startswith(b"data: {"):
                    reader.end = json.loads(line[6:])["status"]
    finally:
        writer.close()


async def produce_redis(ids: list[str], args: argparse.Namespace, run: Run) -> None:
    """Every stream appends a batch every ``--batch-ms`` for ``--seconds``, as the API does it (the
    same Lua script, EVALSHA, one command per batch). The streams are spread over TICKS slots of the
    interval; the appends due in one slot go out in one pipeline (the bench's own CPU: 500
    coroutines with a Redis call each would starve the readers of this same process)."""
    from mookti.redis import get_async_redis
    from storage.managers.streams import APPEND, _lifetime, conf, streams

    client = get_async_redis()
    sha = await client.script_load(APPEND.source)
    located = {s: streams.locate(s) for s in ids}
    per_batch = max(1, round(args.rate * args.batch_ms / 1000))
    seq = dict.fromkeys(ids, 0)
    live = set(ids)
    tick = args.batch_ms / 1000 / TICKS
    slots = [ids[i::TICKS] for i in range(TICKS)]
    began = time.monotonic()
    n = 0
    while time.monotonic() - began < args.seconds and live:
        due = [s for s in slots[n % TICKS] if s in live]
        if due:
            pipe = client.pipeline(transaction=False)
            now = time.time()
            stale = int(now * 1_000_000) - conf("STALE_AFTER") * 1_000_000
            for s in due:
                loc = located[s]
                sent = run.sent.get(s, 0)
                chunks = [f"{now}|token {sent + i}" for i in range(per_batch)]
                fixed = [conf("MAX_CHUNKS"), conf("MAX_BYTES"), _lifetime(), conf("TTL")]
                argv = [loc.owner_id, s, seq[s], int(now * 1_000_000), stale, *fixed, *chunks]
                pipe.execute_command("EVALSHA", sha, 4, *loc.keys, *argv)  # a cluster pipeline has no .evalsha()
            for s, reply in zip(due, await pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, Exception) or reply[0] != "ok":
                    live.discard(s)
                    run.errors.append(f"append {s} seq {seq[s]}: {reply!r}; {await _diagnose(client, located[s])}")
                    continue
                run.sent[s] = run.sent.get(s, 0) + per_batch
                seq[s] += 1
        n += 1
        await asyncio.sleep(max(0.0, began + n * tick - time.monotonic()))


async def _diagnose(client, located) -> str:
    """What Redis holds for a stream whose append was refused (why ``unknown``: meta, owner, chat)."""
    meta, chat = await asyncio.gather(client.hgetall(located.keys[0]), client.exists(located.keys[3]))
    ttl = await client.pttl(located.keys[0])
    return f"meta {meta} (pttl {ttl} ms), chat exists {chat}, owner {located.owner_id}"


async def produce_http(port: int, stream_id: str, auth: dict[str, str], args: argparse.Namespace, run: Run) -> None:
    """Post a batch every ``--batch-ms`` for ``--seconds`` to the API."""
    connection = Connection(port)
    per_batch = max(1, round(args.rate * args.batch_ms / 1000))
    sent, seq = 0, 0
    began = time.monotonic()
    await asyncio.sleep(args.batch_ms / 1000 * (hash(stream_id) % 100) / 100)  # spread the producers
    while time.monotonic() - began < args.seconds:
        started = time.monotonic()
        chunks = [f"{time.time()}|token {sent + i}" for i in range(per_batch)]
        path = f"/api/storage/stream/{stream_id}/chunks"
        async with HTTP_GATE:
            reply = await connection.request("POST", path, {"seq": seq, "chunks": chunks}, auth)
        if reply.status != 200:
            run.errors.append(f"append {stream_id}: HTTP {reply.status} {reply.body[:200]!r}")
            break
        run.roundtrips.append(int(reply.headers.get("x-redis-roundtrips", "0")))
        sent, seq = sent + per_batch, seq + 1
        run.sent[stream_id] = sent
        await asyncio.sleep(max(0.0, args.batch_ms / 1000 - (time.monotonic() - started)))
    await connection.close()


async def end_all(port: int, ids: list[str], auth: dict[str, str], run: Run) -> None:
    """End every stream through the API (its followers get the end event and close)."""

    async def worker(mine: list[str]) -> None:
        connection = Connection(port)
        for stream_id in mine:
            reply = await connection.request("POST", f"/api/storage/stream/{stream_id}/end", {}, auth)
            if reply.status != 200:
                run.errors.append(f"end {stream_id}: HTTP {reply.status} {reply.body[:200]!r}")
        await connection.close()

    await asyncio.gather(*(worker(ids[i::16]) for i in range(16)))


async def roundtrips_part(server: Server, auth: dict[str, str], chat_id: str) -> None:
    connection = Connection(server.port)
    stream_id = str(uuid.uuid4())
    path = f"/api/storage/chat/{chat_id}/streams"
    expect(await connection.request("POST", path, {"streamId": stream_id}, auth), 201, "stream")
    rts = []
    for seq in range(50):
        body = {"seq": seq, "chunks": ["token "] * 5}
        reply = await connection.request("POST", f"/api/storage/stream/{stream_id}/chunks", body, auth)
        expect(reply, 200, "append")
        rts.append(int(reply.headers.get("x-redis-roundtrips", "0")))
    print(
        f"  Redis round trips per appended batch over HTTP (auth included: 1): first {rts[0]}, then median "
        f"{statistics.median(rts[1:])}, max {max(rts[1:])}"
    )


async def streams_part(server: Server, auth: dict[str, str], args: argparse.Namespace) -> bool:
    """Part 1; False when something went wrong (errors, lost or duplicated chunks, readers not done)."""
    connection = Connection(server.port)
    chats = [
        expect(await connection.request("POST", "/api/storage/chat", {}, auth), 201, "chat")["id"]
        for _ in range(max(1, min(args.chats, args.streams)))
    ]  # the streams of a chat share its hash slot; on a cluster the hub reads per slot
    chat_id = chats[0]
    ids = [str(uuid.uuid4()) for _ in range(args.streams)]
    for n, stream_id in enumerate(ids):
        path = f"/api/storage/chat/{chats[n % len(chats)]}/streams"
        expect(await connection.request("POST", path, {"streamId": stream_id}, auth), 201, "stream")
    run = Run()
    opened = time.monotonic()
    followers = [asyncio.create_task(follow(server.port, s, auth, run, len(ids))) for s in ids]
    try:
        await asyncio.wait_for(run.all_connected.wait(), args.grace)
    except TimeoutError:
        run.errors.append(f"only {run.connected} of {len(ids)} readers connected in {args.grace:.0f}s")
    connect_s = time.monotonic() - opened
    await asyncio.sleep(0.5)  # the last readers' first (empty) buffer reads done
    cpu_before, wall_before, own_before = process_usage(server.process.pid)[0], time.monotonic(), time.process_time()
    if args.via == "redis":
        await produce_redis(ids, args, run)
    else:
        await asyncio.gather(*(produce_http(server.port, s, auth, args, run) for s in ids))
    produced = time.monotonic() - wall_before
    await end_all(server.port, ids, auth, run)
    _, pending = await asyncio.wait(followers, timeout=args.grace)
    for task in pending:
        task.cancel()
    wall = time.monotonic() - wall_before
    web_cores = (process_usage(server.process.pid)[0] - cpu_before) / wall
    own_cores = (time.process_time() - own_before) / wall
    sent = sum(run.sent.values())
    received = sum(r.received for r in run.readers.values())
    duplicated = sum(r.duplicated for r in run.readers.values())
    gaps = sum(r.gaps for r in run.readers.values())
    lost = sum(max(0, run.sent.get(s, 0) - r.received) for s, r in run.readers.items())
    unfinished = sum(r.end is None for r in run.readers.values())
    ms = [x * 1000 for x in run.latencies] or [0.0]
    asked = args.streams * args.rate
    print(f"streams={args.streams} chats={len(chats)} rate={args.rate:g}/s batch={args.batch_ms}ms", end=" ")
    print(f"seconds={args.seconds:g} via={args.via}")
    print(f"  {len(ids)} readers connected in {connect_s:.1f}s; appending took {produced:.1f}s")
    print(
        f"  chunks sent {sent} ({sent / produced:.0f}/s of {asked:.0f}/s asked), received {received}, "
        f"lost {lost}, duplicated {duplicated}, gaps {gaps}, readers without the end {unfinished}"
    )
    print(
        f"  delivery latency ms (append sent -> chunk read): p50 {percentile(ms, 0.5):.1f}  "
        f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}"
    )
    print(f"  CPU: web process {web_cores:.2f} cores, this bench process {own_cores:.2f} cores")
    if run.roundtrips:
        print(f"  Redis round trips per append request (auth included): median {statistics.median(run.roundtrips)}")
    for error in run.errors[:5]:
        print(f"  ERROR {error}")
    if len(run.errors) > 5:
        print(f"  ... {len(run.errors) - 5} more errors")
    await roundtrips_part(server, auth, chat_id)
    return not (run.errors or lost or duplicated or gaps or unfinished)


async def pages_part(server: Server, auth: dict[str, str], args: argparse.Namespace) -> None:
    connection = Connection(server.port)
    chat_id = expect(await connection.request("POST", "/api/storage/chat", {}, auth), 201, "chat")["id"]
    parts = [{"type": "text", "text": "A typical tutoring answer of a few sentences. " * 6}]
    batch = [{"chatId": chat_id, "role": "assistant", "parts": parts} for _ in range(50)]
    expect(await connection.request("POST", "/api/storage/message", {"messages": batch}, auth), 201, "messages")
    path = f"/api/storage/message?chatId={chat_id}&limit=50"
    etag = (await connection.request("GET", path, None, auth)).headers["etag"]
    results = {}
    for label, headers in (("full 200", auth), ("304", {**auth, "If-None-Match": etag})):
        cpu_before = process_usage(server.process.pid)[0]
        for _ in range(args.pages):
            reply = await connection.request("GET", path, None, headers)
        cpu = process_usage(server.process.pid)[0] - cpu_before
        results[label] = cpu / args.pages * 1000
        print(
            f"  {label}: HTTP {reply.status}, {results[label]:.2f} ms server CPU per answer, "
            f"{reply.headers.get('x-redis-roundtrips')} Redis round trips"
        )
    print(f"  304 / full CPU ratio: {results['304'] / results['full 200']:.2f}")
    if shutil.which("wrk") is None:
        print("  (wrk is not installed: no figures under load)")
        return
    print(f"  under load (wrk, {args.connections} connections, {args.wrk_seconds}s each, alternating, 2 rounds):")
    loaded = {"full 200": [0, 0.0], "304": [0, 0.0]}
    with tempfile.TemporaryDirectory() as scripts:
        for round_number in range(2):
            order = list(loaded) if round_number == 0 else list(loaded)[::-1]
            for label in order:
                headers = {**auth, **({"If-None-Match": etag} if label == "304" else {})}
                cpu_before = process_usage(server.process.pid)[0]
                requests, expected = run_wrk(server.port, path, headers, args, Path(scripts))
                loaded[label][0] += requests
                loaded[label][1] += process_usage(server.process.pid)[0] - cpu_before
                if expected != requests:
                    raise SystemExit(f"wrk {label}: {requests - expected} answers with another status")
    cpu = {label: seconds / requests * 1000 for label, (requests, seconds) in loaded.items()}
    for label, value in cpu.items():
        print(f"    {label}: {value:.2f} ms server CPU per answer ({loaded[label][0]} answers)")
    print(f"    304 / full CPU ratio: {cpu['304'] / cpu['full 200']:.2f}")


WRK_PAGE = """
{headers}
done = function(summary, latency, requests)
  io.write(string.format("WRK-PAGE %d\\n", summary.requests))
end
"""


def run_wrk(port: int, path: str, headers: dict[str, str], args: argparse.Namespace, scripts: Path) -> tuple[int, int]:
    """(answers, answers with a 2xx or 3xx status) of one wrk run."""
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script = scripts / "page.lua"
    script.write_text(WRK_PAGE.format(headers=lines))
    argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.wrk_seconds}s", "-s", str(script)]
    done = subprocess.run([*argv, f"http://{HOST}:{port}{path}"], capture_output=True, text=True, check=False)
    match = re.search(r"^WRK-PAGE (\d+)$", done.stdout, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if done.returncode or not match:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    requests = int(match.group(1))
    return requests, requests - (int(non2xx.group(1)) if non2xx else 0)


async def main(args: argparse.Namespace) -> int:
    load = os.getloadavg()
    print(f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    ok = False
    with tempfile.TemporaryDirectory() as data_dir:
        server = Server.start(1, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), Path(data_dir))
        try:
            await server.wait_ready()
            os.environ.update(MOOKTI_REDIS_PREFIX=server.prefix, DJANGO_SETTINGS_MODULE="mookti.settings")
            django.setup()
            _, token = await create_user(Connection(server.port), server, "streams", 0)
            auth = {"Authorization": f"Bearer {token}"}
            ok = True
            if "streams" in args.parts:
                ok = await streams_part(server, auth, args)
                if not ok:
                    print("  server log (tail):", server.log.read_text()[-2000:] or "(empty)")
            if "pages" in args.parts and args.pages:
                print(f"50-message page, {args.pages} requests each, sequential:")
                await pages_part(server, auth, args)
        finally:
            server.stop()
            server.delete_keys()
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20, help="chunks per second per stream")
    parser.add_argument("--batch-ms", type=int, default=100, help="a producer appends every this many ms")
    parser.add_argument("--seconds", type=float, default=10, help="how long the producers append")
    parser.add_argument("--chats", type=int, default=1, help="the streams are spread over this many chats")
    parser.add_argument("--grace", type=float, default=60, help="at most this long for readers to connect / finish")
    parser.add_argument("--pages", type=int, default=300, help="part 3's requests of each kind (0: skip part 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections for the pages under load")
    parser.add_argument("--wrk-seconds", type=int, default=5, help="wrk seconds per page kind and round")
    parser.add_argument("--via", choices=("redis", "http"), default="redis", help="how producers append")
    parser.add_argument(
        "--parts",
        type=lambda text: {part.strip() for part in text.split(",")},
        default={"streams", "pages"},
        help="comma-separated: streams (parts 1 and 2), pages (part 3); default both",
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
