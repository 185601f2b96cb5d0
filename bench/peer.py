"""The service against its Node peer (``bench/peer/``), side by side, driven by wrk.

    .venv/bin/python bench/peer.py [--seconds 5] [--rounds 4] [--connections 16] [--ops list-chats,...]

Starts the service (:func:`start_service`: the product's own ``manage.py serve``, one web
process, no indexer, ``DJANGO_SETTINGS_MODULE=mookti.settings``) on a free port with a unique
``MOOKTI_REDIS_PREFIX``, and the Node peer on another port over the same Redis keys and prefix.
The peer runs the service's own Lua scripts (found by name in the repository's source, see
:func:`lua_scripts`) and settings (message limits, event retention, gamification rules).

Fixtures go through the service's HTTP API: a user and token created with the service key,
25 chats, a chat of 60 messages to read and a chat to post into. Before timing, every
operation's answer from the peer must equal the service's (status and JSON), and a message
posted through each side must leave the same Redis keys behind (names with ids replaced,
types, hash fields, the learner's gamification counters and live-update event types).

Then wrk (``apt-get install -y wrk``) drives each operation for ``--rounds`` rounds of
``--seconds``, alternating which side goes first, with ``--connections`` keep-alive
connections; its Lua ``done`` hook reports requests, p50/p99 latency and non-2xx answers.
Printed per operation: req/s, p50/p99 and the ratios service/peer. Every key under the prefix
is removed at the end. Search (``--ops search``, :mod:`bench.peer_search`): the peer reads the
service's cached query embedding and queries the same LanceDB tables; how the corpus is indexed
and how answers are compared (scores to 4 decimals when not exact) is in that module.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import HOST, ROOT, Connection, Server, create_user, expect, free_port, wait_healthy
from bench.peer_search import SearchOperation
from mookti.events import decode

PEER_DIR = ROOT / "bench" / "peer"
SEED_CHATS = 25
SEED_MESSAGES = 60
# The Lua scripts the peer runs, by the name of the constant the service keeps them in.
SCRIPT_NAMES = {
    "page": "PAGE_SCRIPT",
    "reserveQuota": "RESERVE_QUOTA",
    "raiseField": "RAISE_FIELD",
    "afterAppend": "AFTER_APPEND",
    "recordActivity": "RECORD_ACTIVITY",
    "bump": "BUMP",
}
# Settings the peer's writes depend on, read in the service's environment (no app imported
# beyond the gamification rules, whose module does not move).
SETTINGS_PROBE = """
import json
from django.conf import settings
from gamification.achievements import ACHIEVEMENTS, describe, rules
from storage.keys import LOOKUP_BUCKETS
print(json.dumps({
    "lookupBuckets": LOOKUP_BUCKETS,
    "messageLimits": settings.MOOKTI_MESSAGE_LIMITS,
    "eventsMaxlen": settings.MOOKTI_EVENTS_MAXLEN,
    "eventsRetention": settings.MOOKTI_EVENTS_RETENTION,
    "gamification": settings.MOOKTI_GAMIFICATION,
    "rules": rules(),
    "achievements": {a.id: describe(a.id, None) for a in ACHIEVEMENTS},
}))
"""


# --- the two servers ----------------------------------------------------------------------------
def start_service(redis_url: str, data_dir: Path) -> Server:
    """The service as production runs it: ``manage.py serve`` with one web process, so a change of
    web tier (uvicorn, gunicorn, granian...) is benchmarked as deployed. The one place to change
    if the service must be started differently."""
    return Server.start(1, redis_url, data_dir, supervised=True, indexers=0, settings_module="mookti.settings")


def lua_scripts() -> dict[str, str]:
    """The source of each ``NAME = register_script(...)`` in the repository, found by name, so the
    peer runs exactly the service's scripts wherever their module lives."""
    wanted = {name: peer_name for peer_name, name in SCRIPT_NAMES.items()}
    found: dict[str, str] = {}
    skip = {".venv", "node_modules", "tests", "bench", ".git"}
    for path in ROOT.rglob("*.py"):
        if skip & set(path.relative_to(ROOT).parts) or "register_script" not in (text := path.read_text()):
            continue
        module = ast.parse(text)
        constants = {
            node.targets[0].id: node.value.value
            for node in module.body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        }
        for node in module.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in wanted
                and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", "") == "register_script"
            ):
                name = node.targets[0].id
                if wanted[name] in found:
                    raise SystemExit(f"{name} = register_script(...) is defined twice (second in {path})")
                found[wanted[name]] = _string_value(node.value.args[0], constants)
    missing = sorted(set(SCRIPT_NAMES.values()) - {SCRIPT_NAMES[k] for k in found})
    if missing:
        raise SystemExit(f"Lua scripts not found in the repository: {', '.join(missing)}")
    return found


def _string_value(node: ast.expr, constants: dict[str, str]) -> str:
    """A string literal, a module-level string constant, or their concatenation."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _string_value(node.left, constants) + _string_value(node.right, constants)
    raise SystemExit(f"cannot read a script source: {ast.dump(node)[:200]}")


def peer_config(server: Server) -> dict[str, Any]:
    probe = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE], cwd=ROOT, env=server.env, capture_output=True, text=True, check=False
    )
    if probe.returncode:
        raise SystemExit(f"reading the service's settings failed:\n{probe.stderr}")
    return {"prefix": server.prefix, **json.loads(probe.stdout)}


@dataclass
class Peer:
    port: int
    process: subprocess.Popen

    @classmethod
    def start(cls, server: Server, data_dir: Path) -> Peer:
        if not (PEER_DIR / "node_modules").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)
        scripts = data_dir / "peer-scripts.json"
        scripts.write_text(json.dumps(lua_scripts()))
        port = free_port()
        env = {
            **os.environ,
            "HOST": HOST,
            "PORT": str(port),
            "REDIS_URL": server.redis_url,
            "PEER_CONFIG": json.dumps(peer_config(server)),
            "PEER_SCRIPTS": str(scripts),
        }
        log = (data_dir / "peer.log").open("w")
        process = subprocess.Popen(["node", "server.js"], cwd=PEER_DIR, env=env, stdout=log, stderr=log)
        return cls(port, process)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await wait_healthy(self.process, self.port, timeout, "the peer")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- fixtures and operations --------------------------------------------------------------------
@dataclass
class Fixture:
    user_id: str
    token: str
    read_chat: str
    post_chat: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def text_message(chat_id: str, index: int) -> dict[str, Any]:
    role = "user" if index % 2 == 0 else "assistant"
    return {"chatId": chat_id, "role": role, "parts": [{"type": "text", "text": f"Message {index}: what is 7 x 8?"}]}


async def seed(server: Server, label: str, chats: int = SEED_CHATS, messages: int = SEED_MESSAGES) -> Fixture:
    connection = Connection(server.port)
    user_id, token = await create_user(connection, server, label, 0)
    auth = {"Authorization": f"Bearer {token}"}
    chat_ids = []
    for index in range(chats + 2):
        reply = await connection.request("POST", "/api/storage/chat", {"title": f"Chat {index}"}, auth)
        chat_ids.append(expect(reply, 201, "chat")["id"])
    if messages:
        batch = {"messages": [text_message(chat_ids[0], i) for i in range(messages)]}
        expect(await connection.request("POST", "/api/storage/message", batch, auth), 201, "messages")
    await connection.close()
    return Fixture(user_id, token, chat_ids[0], chat_ids[1])


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    status: int = 200

    def target(self, fixture: Fixture) -> tuple[str, str, Any]:
        path = self.path.format(f=fixture)
        body = {**text_message(fixture.post_chat, 0), "parts": [{"type": "text", "text": "Fractions, step by step"}]}
        return self.method, path, body if self.method == "POST" else None


OPERATIONS = {
    "list-chats": Operation("list 20 chats", "GET", "/api/storage/chat?limit=20"),
    "get-chat": Operation("get a chat", "GET", "/api/storage/chat/{f.read_chat}"),
    "read-messages": Operation("read 50 messages", "GET", "/api/storage/message?chatId={f.read_chat}&limit=50"),
    "post-message": Operation("post one message", "POST", "/api/storage/message", 201),
    "search": SearchOperation("search, cached"),
}


# --- equality checks ----------------------------------------------------------------------------
async def check_reads(server: Server, peer: Peer, fixture: Fixture, ops: list[Operation]) -> None:
    """Every read answers the same JSON on both sides (plus a cursor page and a 404)."""
    extra = [
        Operation("chat page after a cursor", "GET", "/api/storage/chat?limit=5&endingBefore={f.post_chat}"),
        Operation("message page of 7", "GET", "/api/storage/message?chatId={f.read_chat}&limit=7"),
        Operation("unknown chat", "GET", "/api/storage/chat/no-such-chat", 404),
        Operation("bad token", "GET", "/api/storage/chat?limit=20", 401),
    ]
    service, other = Connection(server.port), Connection(peer.port)
    for op in [*ops, *extra]:
        if op.method != "GET":
            continue
        _, path, _ = op.target(fixture)
        auth = {"Authorization": "Bearer mkt_nope"} if op.status == 401 else fixture.auth
        a, b = await service.request("GET", path, None, auth), await other.request("GET", path, None, auth)
        if (a.status, a.json()) != (b.status, b.json()) or a.status != op.status:
            service_text, peer_text = f"{a.status} {a.body[:600]!r}", f"{b.status} {b.body[:600]!r}"
            raise SystemExit(f"{op.name}: the peer differs\n service {service_text}\n peer    {peer_text}")
        print(f"  {op.name}: equal ({a.status}, {len(a.body)} bytes)")
    await service.close()
    await other.close()


def _shape(client: Any, names: list[str], ids: dict[str, str]) -> dict[str, Any]:
    """Key names with ids replaced, each with its type and (hashes) field names (ids replaced too) or
    (streams) length."""

    def generic(text: str) -> str:
        for value, label in ids.items():
            text = text.replace(value, label)
        return text

    out = {}
    for name in names:
        kind = client.type(name)
        detail: Any = None
        if kind == "hash":  # a chat's message data has message ids as fields
            detail = sorted(map(generic, client.hkeys(name)))
        elif kind == "stream":
            detail = client.xlen(name)
        elif kind == "zset":
            detail = client.zcard(name)
        out[generic(name)] = (kind, detail)
    return out


async def check_post(server: Server, peer: Peer) -> None:
    """A message posted through each side (fresh users) writes the same keys, counters and events."""
    fixtures = {side: await seed(server, f"check-{side}", chats=0, messages=0) for side in ("service", "peer")}
    replies = {}
    for side, port in (("service", server.port), ("peer", peer.port)):
        fixture = fixtures[side]
        connection = Connection(port)
        body = text_message(fixture.read_chat, 0)
        replies[side] = expect(await connection.request("POST", "/api/storage/message", body, fixture.auth), 201, side)
        await connection.close()
    await asyncio.sleep(1.0)  # both sides publish gamification events after the response
    shapes, events, counters = {}, {}, {}
    client = server.redis_client()
    binary = server.redis_client(raw=True)  # event entries are packed: bytes, the service's decoder
    try:
        for side, fixture in fixtures.items():
            message = replies[side][0]
            ids = {fixture.user_id: "{user}", fixture.read_chat: "{chat}", fixture.post_chat: "{chat2}"}
            ids[message["id"]] = "{message}"
            names = [n for n in client.scan_iter(match=f"{server.prefix}*", count=1000) if any(i in n for i in ids)]
            shapes[side] = _shape(client, names, ids)
            stream = f"{server.prefix}user:{{{fixture.user_id}}}:events"
            # each event's type and how it is stored (a code or the generic form's type name)
            events[side] = [(decode(fields)[0], fields[b"type"].decode()) for _, fields in binary.xrange(stream)]
            totals = client.hgetall(f"{server.prefix}user:{{{fixture.user_id}}}:totals")
            counters[side] = totals
            # the service reads the peer's message back exactly as the peer answered
            connection = Connection(server.port)
            read = await connection.request("GET", f"/api/storage/message/{message['id']}", None, fixture.auth)
            await connection.close()
            if expect(read, 200, "read back") != message:
                raise SystemExit(f"{side}: message read back differs:\n {read.body!r}\n {message!r}")
    finally:
        client.close()
        binary.close()
    normalised = [{k: v for k, v in r[0].items() if k not in ("id", "chatId", "createdAt")} for r in replies.values()]
    checks = {
        "answer (without id, chatId, createdAt)": normalised,
        "keys written": list(shapes.values()),
        "event types": list(events.values()),
        "gamification totals": list(counters.values()),
    }
    for what, (service, other) in checks.items():
        if service != other:
            raise SystemExit(f"post one message: {what} differ\n service {service}\n peer    {other}")
    print(f"  post one message: equal ({len(shapes['service'])} keys, events {events['service']})")


# --- wrk ----------------------------------------------------------------------------------------
WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
wrk.headers["Authorization"] = {auth}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"

done = function(summary, latency, requests)
  io.write(string.format(
    'WRK-JSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for this ASCII text


@dataclass
class Stats:
    requests: int = 0
    seconds: float = 0.0
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, result: dict[str, int]) -> None:
        self.requests += result["requests"]
        self.seconds += result["duration_us"] / 1e6
        self.p50.append(result["p50_us"] / 1000)
        self.p99.append(result["p99_us"] / 1000)
        self.errors += result["non2xx"] + result["socket"]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @staticmethod
    def middle(values: list[float]) -> float:
        """The median over rounds (each round's percentile comes from wrk)."""
        ordered = sorted(values)
        return ordered[len(ordered) // 2] if ordered else 0.0


def run_wrk(
    port: int, op: Operation, fixture: Fixture, script_dir: Path, args: argparse.Namespace, seconds: int
) -> dict[str, int]:
    """One wrk run against ``port``; its ``done`` hook's summary."""
    method, path, body = op.target(fixture)
    script = script_dir / f"{op.method.lower()}-{abs(hash(path))}.lua"
    script.write_text(
        WRK_SCRIPT.format(
            method=lua_string(method),
            body=lua_string(json.dumps(body)) if body is not None else "nil",
            auth=lua_string(fixture.auth["Authorization"]),
        )
    )
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "-s", str(script)]
    argv.append(f"http://{HOST}:{port}{path}")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    match = re.search(r"^WRK-JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode or not match:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(match.group(1))


def report(results: dict[tuple[str, str], Stats], ops: list[Operation], args: argparse.Namespace) -> None:
    print()
    print(
        f"wrk: {args.connections} connections, {args.threads} thread(s); {args.rounds} round(s) x {args.seconds:g}s "
        "per operation and side (alternating order); one service web process, one Node process"
    )
    header = f"{'operation':<18}{'side':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    header += f"{'req/s ratio':>13}{'p99 ratio':>11}"
    print(header)
    print("-" * len(header))
    for op in ops:
        service, peer = results[(op.name, "service")], results[(op.name, "peer")]
        for side, stats in (("service", service), ("peer", peer)):
            line = f"{op.name:<18}{side:<9}{stats.rate:>9.0f}"
            line += f"{stats.middle(stats.p50):>9.2f}{stats.middle(stats.p99):>9.2f}{stats.errors:>8}"
            if side == "service":
                rate_ratio = service.rate / peer.rate if peer.rate else 0.0
                p99_peer = peer.middle(peer.p99)
                p99_ratio = service.middle(service.p99) / p99_peer if p99_peer else 0.0
                line += f"{rate_ratio:>13.2f}{p99_ratio:>11.1f}"
            print(line)
    print("\nreq/s ratio = service/peer (goal >= 0.33); p99 ratio = service/peer (goal <= 3)")


async def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    ops = [OPERATIONS[name] for name in args.ops]
    with tempfile.TemporaryDirectory(prefix="mookti-peer-") as tmp:
        data_dir = Path(tmp)
        server = start_service(args.redis_url, data_dir)
        peer = None
        try:
            await server.wait_ready()
            peer = Peer.start(server, data_dir)
            await peer.wait_ready()
            print(f"service on {HOST}:{server.port}, peer on {HOST}:{peer.port}, prefix {server.prefix}; seeding...")
            fixture = await seed(server, "peer-bench")
            print("checking that the peer answers as the service does")
            await check_reads(server, peer, fixture, ops)
            for op in ops:
                if isinstance(op, SearchOperation):
                    await op.prepare(server, peer, fixture)
            if OPERATIONS["post-message"] in ops:
                await check_post(server, peer)
            sides = {"service": server.port, "peer": peer.port}
            results = {(op.name, side): Stats() for op in ops for side in sides}
            for op in ops:
                for port in sides.values():
                    run_wrk(port, op, fixture, data_dir, args, args.warmup)
                for round_number in range(args.rounds):
                    order = list(sides) if round_number % 2 == 0 else list(sides)[::-1]
                    for side in order:
                        results[(op.name, side)].add(run_wrk(sides[side], op, fixture, data_dir, args, args.seconds))
                service, other = results[(op.name, "service")], results[(op.name, "peer")]
                print(f"  {op.name}: service {service.rate:.0f} req/s, peer {other.rate:.0f} req/s")
            report(results, ops, args)
        finally:
            if peer is not None:
                peer.stop()
                complaints = (data_dir / "peer.log").read_text().splitlines()[1:]  # after "listening on"
                if complaints:
                    print("peer log:\n" + "\n".join(complaints[-20:]))
            server.stop()
            print(f"\nremoved {server.delete_keys()} keys under {server.prefix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds (whole) per operation, side and round")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds per operation and side")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per operation (sides alternate first)")
    parser.add_argument("--connections", type=int, default=16, help="wrk keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the client shares the machine's cores)")
    parser.add_argument(
        "--ops",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(OPERATIONS),
        help=f"comma-separated operations (default all): {','.join(OPERATIONS)}",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    unknown = [name for name in args.ops if name not in OPERATIONS]
    if unknown:
        parser.error(f"unknown operation(s): {', '.join(unknown)}; choose from {', '.join(OPERATIONS)}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
