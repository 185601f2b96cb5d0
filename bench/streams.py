"""Resumable streams and conditional GETs on one web process (issue 18).

Starts one uvicorn process (``bench.settings``: Redis round trips in a response header), then:

1. ``--streams`` streams at ``--rate`` chunks/s each, appended in batches every ``--batch-ms``,
   each followed by one SSE reader on the web process; prints chunk delivery latency (from the
   append being sent to the chunk reaching its reader) p50/p99 and chunks lost. ``--via redis``
   (default) appends from this process with the same one-call Lua script the API runs, so the web
   process only serves the readers (on a 2-core box one Python process cannot also take thousands
   of append requests per second); ``--via http`` posts every batch to the API.
2. The Redis round trips of an append request (auth included), from 50 appends over HTTP.
3. A 50-message page fetched ``--pages`` times in full and as a 304 (``If-None-Match``): server CPU
   per answer of each, and the ratio; then the same under load (wrk, ``--connections``, 2 rounds of
   ``--wrk-seconds`` each, alternating), where the fixed cost of waking an idle server per request
   is shared.

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
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import HOST, Connection, Server, create_user, expect, percentile, process_usage

# Requests in flight at once, as a webapp's HTTP client pool would allow (500 simultaneous requests
# would exceed the web process's Redis connection pool).
HTTP_GATE = asyncio.Semaphore(64)


async def follow(port: int, stream_id: str, auth: dict[str, str], latencies: list[float], got: dict[str, int]) -> None:
    """Read one stream's SSE answer to its end, timing each chunk (its text starts with the send time)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    head = [f"GET /api/storage/stream/{stream_id} HTTP/1.1", f"Host: {HOST}", *(f"{k}: {v}" for k, v in auth.items())]
    async with HTTP_GATE:  # connecting readers are requests in flight too, until their headers arrive
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        status = (await reader.readline()).split()[1]
    if status != b"200":
        raise SystemExit(f"follow: HTTP {status.decode()}")
    while line := await reader.readline():
        if line.startswith(b"data: ") and b'"status"' not in line:
            latencies.append(time.time() - float(json.loads(line[6:]).split("|", 1)[0]))
            got[stream_id] = got.get(stream_id, 0) + 1
        elif line.startswith(b"event: end"):
            break
    writer.close()


async def produce(port: int, stream_id: str, auth: dict[str, str], args: argparse.Namespace, rts: list[int]) -> int:
    """Append batches for ``args.seconds`` (over HTTP or straight to Redis), then end; returns chunks sent."""
    connection = Connection(port)
    append = _redis_append(stream_id) if args.via == "redis" else None
    per_batch = max(1, round(args.rate * args.batch_ms / 1000))
    sent, seq = 0, 0
    deadline = time.monotonic() + args.seconds
    await asyncio.sleep(args.batch_ms / 1000 * (hash(stream_id) % 100) / 100)  # spread the producers
    while time.monotonic() < deadline:
        started = time.monotonic()
        chunks = [f"{time.time()}|token {sent + i}" for i in range(per_batch)]
        if append is not None:
            await append(seq, chunks)
        else:
            path = f"/api/storage/stream/{stream_id}/chunks"
            async with HTTP_GATE:
                reply = await connection.request("POST", path, {"seq": seq, "chunks": chunks}, auth)
            expect(reply, 200, "append")
            rts.append(int(reply.headers.get("x-redis-roundtrips", "0")))
        sent, seq = sent + per_batch, seq + 1
        await asyncio.sleep(max(0.0, args.batch_ms / 1000 - (time.monotonic() - started)))
    async with HTTP_GATE:
        expect(await connection.request("POST", f"/api/storage/stream/{stream_id}/end", {}, auth), 200, "end")
    await connection.close()
    return sent


def _redis_append(stream_id: str):
    """An append as the API does it (the same Lua call and arguments), from this process."""
    from mookti.redis import get_async_redis
    from storage.managers.streams import APPEND, _lifetime, conf, streams

    located = streams.locate(stream_id)

    async def append(seq: int, chunks: list[str]) -> None:
        now = int(time.time() * 1_000_000)
        args = [located.owner_id, stream_id, seq, now, now - conf("STALE_AFTER") * 1_000_000]
        args += [conf("MAX_CHUNKS"), conf("MAX_BYTES"), _lifetime(), conf("TTL"), *chunks]
        code = (await get_async_redis().eval(APPEND.source, len(located.keys), *located.keys, *args))[0]
        if code != "ok":
            raise SystemExit(f"append: {code}")

    return append


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
        f"  Redis round trips per append request over HTTP (auth included): first {rts[0]}, then median "
        f"{statistics.median(rts[1:])}, max {max(rts[1:])}"
    )


async def streams_part(server: Server, auth: dict[str, str], args: argparse.Namespace) -> None:
    connection = Connection(server.port)
    chat_id = expect(await connection.request("POST", "/api/storage/chat", {}, auth), 201, "chat")["id"]
    ids = [str(uuid.uuid4()) for _ in range(args.streams)]
    for stream_id in ids:
        expect(
            await connection.request("POST", f"/api/storage/chat/{chat_id}/streams", {"streamId": stream_id}, auth),
            201,
            "stream",
        )
    latencies: list[float] = []
    got: dict[str, int] = {}
    rts: list[int] = []
    followers = [asyncio.create_task(follow(server.port, s, auth, latencies, got)) for s in ids]
    await asyncio.sleep(1.0)  # followers connected and waiting
    cpu_before, wall_before, own_before = process_usage(server.process.pid)[0], time.monotonic(), time.process_time()
    sent = await asyncio.gather(*(produce(server.port, s, auth, args, rts) for s in ids))
    await asyncio.wait_for(asyncio.gather(*followers), 120)
    wall = time.monotonic() - wall_before
    web_cores = (process_usage(server.process.pid)[0] - cpu_before) / wall
    own_cores = (time.process_time() - own_before) / wall
    lost = sum(sent) - sum(got.values())
    ms = [x * 1000 for x in latencies]
    print(f"streams={args.streams} rate={args.rate}/s batch={args.batch_ms}ms seconds={args.seconds} via={args.via}")
    print(f"  chunks sent {sum(sent)} ({sum(sent) / args.seconds:.0f}/s), delivered {sum(got.values())}, lost {lost}")
    print(f"  CPU: web process {web_cores:.2f} cores, this bench process {own_cores:.2f} cores")
    print(f"  delivery latency ms: p50 {percentile(ms, 0.5):.1f}  p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}")
    if rts:
        print(f"  Redis round trips per append request (auth included): median {statistics.median(rts)}")
    await roundtrips_part(server, auth, chat_id)


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


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        server = Server.start(1, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), Path(data_dir))
        try:
            await server.wait_ready()
            os.environ.update(MOOKTI_REDIS_PREFIX=server.prefix, DJANGO_SETTINGS_MODULE="mookti.settings")
            django.setup()
            _, token = await create_user(Connection(server.port), server, "streams", 0)
            auth = {"Authorization": f"Bearer {token}"}
            if "streams" in args.parts:
                try:
                    await streams_part(server, auth, args)
                except SystemExit:
                    print(server.log.read_text()[-3000:])
                    raise
            if "pages" in args.parts:
                print(f"50-message page, {args.pages} requests each, sequential:")
                await pages_part(server, auth, args)
        finally:
            server.stop()
            server.delete_keys()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20, help="chunks per second per stream")
    parser.add_argument("--batch-ms", type=int, default=100, help="a producer appends every this many ms")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections for the pages under load")
    parser.add_argument("--wrk-seconds", type=int, default=5, help="wrk seconds per page kind and round")
    parser.add_argument("--via", choices=("redis", "http"), default="redis", help="how producers append")
    parser.add_argument(
        "--parts",
        type=lambda text: {part.strip() for part in text.split(",")},
        default={"streams", "pages"},
        help="comma-separated: streams (parts 1 and 2), pages (part 3); default both",
    )
    asyncio.run(main(parser.parse_args()))
