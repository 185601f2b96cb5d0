"""Load benchmark: a mixed workload from many clients against N web processes and the indexers.

    .venv/bin/python bench/load.py [--clients 32] [--seconds 30] [--workers 1] [--indexers 2]
                                   [--redis-url redis://127.0.0.1:6379/0] [--cluster]
                                   [--mix create=10,post=40,list=15,read=10,search=10,streak=15]

Starts the whole service as production runs it, ``manage.py serve --workers N --indexers 2
--no-migrate`` (uvicorn with N worker processes on one port, the outbox indexers), on a free
port with a unique ``MOOKTI_REDIS_PREFIX``, a random service key and a temporary
``MOOKTI_DATA_DIR`` (a fresh LanceDB; the local embedding model). The product's message limits
stay in force (``--message-limit`` sets ``MOOKTI_LIMIT_PRO``): the users are pro users, so a
short run stays under 2,000 messages a day each, and any 429 is counted apart from the errors.
``--cluster`` says ``--redis-url`` is a Redis Cluster (``REDIS_CLUSTER=true``; the channel layer
then uses ``--channel-redis-url``).

1. **Seed** through the service key: ``--users`` pro users (default: one per client), a token
   each, 3 chats of 8 messages each; then wait until the indexers have drained the outbox (so
   they are up, their model loaded, and search finds something).
2. **Warm up** for ``--warmup`` seconds with the mix (not measured: the web processes load the
   embedding model on their first uncached search query).
3. **Load** for ``--seconds``: ``--clients`` keep-alive HTTP/1.1 clients (``bench.common``),
   client ``i`` acting as user ``i % users``, each sending requests back to back (closed loop),
   every request drawn from the mix: create a chat, post a learner message (role ``user``; it
   counts as gamification activity and goes to the search outbox) to one of the user's chats,
   list 20 chats, read 50 messages of a chat, search (``POST /api/storage/search``, top 5,
   queries made of random topics so most miss the query-embedding cache), read the streak.
   Prints requests/s, p50/p99 per operation, 429s and errors (any other status, timeouts and
   broken connections), with the CPU seconds each server process used during the window and the
   load average.
4. **Indexer**: the backlog (unread + read but not acked) at the end of the window and its
   maximum during it, then how long the indexers take to drain it; dead letters.
5. **Consistency**, in this process with Django pointed at the same Redis, prefix and data dir:
   every check of ``storage.portability.repair`` over the prefix (users, chats and messages against their
   indexes, message lookups, email claims, documents, and the vector store against what the
   indexer would write: a message not indexed or a vector for nothing is a problem); every
   acknowledged write present: each user's chat indexes hold exactly the chats created with a
   201, each chat's message index exactly the messages posted with a 201, and each chat's
   lastMessageAt (hash and activity index) is its newest message; no user got more learner
   messages accepted than the daily limit; gamification: each user's message count and message
   XP match the learner messages acknowledged, weekly XP adds up to the total, the weekly
   leaderboard holds the weekly XP, the streak is alive.

``--users`` below ``--clients`` puts several clients on one user (like tabs), so their writes
race: e.g. ``--clients 32 --users 2 --mix post=60,read=20,list=20`` (saves into one chat that
commit out of order), ``--users 4 --message-limit 150`` (deliberate 429s, and the limit under
concurrent posts).

Exits 1 if there was an error or a problem. The server is stopped, every key of the prefix is
deleted and the temporary directory removed at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Connection,
    Server,
    create_user,
    descendants,
    expect,
    machine_cpu,
    percentile,
    process_name,
    process_usage,
)

OPERATIONS = {
    "create": "create chat",
    "post": "post message",
    "list": "list 20 chats",
    "read": "read 50 messages",
    "search": "search",
    "streak": "read streak",
}
DEFAULT_MIX = "create=10,post=40,list=15,read=10,search=10,streak=15"
SEED_CHATS = 3
SEED_MESSAGES = 8
SEEDERS = 16
SHOWN_ERRORS = 5
TOPICS = [
    "fractions",
    "photosynthesis",
    "the French revolution",
    "quadratic equations",
    "plate tectonics",
    "Newton's second law",
    "the water cycle",
    "prime numbers",
    "cell division",
    "supply and demand",
    "the Pythagorean theorem",
    "chemical bonds",
    "the Roman empire",
    "probability",
    "poetic meter",
    "climate zones",
    "long division",
    "electric circuits",
    "the causes of World War I",
    "irregular verbs",
]
ASKS = [
    "Can you explain {t} with an example from {u}?",
    "I don't get {t}. Where should I start if I already know {u}?",
    "Give me three practice questions that mix {t} and {u}.",
    "How does {t} relate to {u}?",
    "Why does {t} matter when you study {u}?",
    "Summarise {t} in two sentences, then quiz me on {u}.",
]
QUERIES = ["{t} and {u}", "what did we say about {t}", "practice questions on {t} with {u}", "{t} explained simply"]


def phrase(templates: list[str], rng: random.Random) -> str:
    first, second = rng.sample(TOPICS, 2)
    return rng.choice(templates).format(t=first, u=second)


# --- users and what the server acknowledged -----------------------------------------------------
@dataclass
class User:
    id: str
    token: str
    chats: list[str] = field(default_factory=list)  # acknowledged (201) chats, seeded ones first
    messages: dict[str, set[str]] = field(default_factory=dict)  # chat id -> acknowledged message ids
    learner_messages: int = 0  # acknowledged messages with role "user" (gamification activity)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def seed_users(server: Server, count: int) -> list[User]:
    users: list[User] = []

    async def seeder(numbers: list[int]) -> None:
        connection = Connection(server.port)
        for number in numbers:
            user = User(*await create_user(connection, server, "load", number, type="pro"))
            rng = random.Random(number)
            for index in range(SEED_CHATS):
                body = {"id": str(uuid.uuid4()), "title": f"Lesson {index}"}
                expect(await connection.request("POST", "/api/storage/chat", body, user.auth), 201, "chat")
                user.chats.append(body["id"])
                messages = []
                for n in range(SEED_MESSAGES):
                    role = "user" if n % 2 == 0 else "assistant"
                    text = phrase(ASKS, rng)
                    messages.append(
                        {"id": str(uuid.uuid4()), "chatId": body["id"], "role": role, "parts": [text_part(text)]}
                    )
                reply = await connection.request("POST", "/api/storage/message", {"messages": messages}, user.auth)
                expect(reply, 201, "messages")
                user.messages[body["id"]] = {m["id"] for m in messages}
                user.learner_messages += sum(m["role"] == "user" for m in messages)
            users.append(user)
        await connection.close()

    numbers = list(range(count))
    await asyncio.gather(*(seeder(numbers[i::SEEDERS]) for i in range(SEEDERS)))
    return users


def text_part(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


# --- the workload -------------------------------------------------------------------------------
@dataclass
class OpStats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    limited: int = 0
    errors: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def error(self, what: str, detail: str) -> None:
        self.errors[what] += 1
        if len(self.examples) < SHOWN_ERRORS:
            self.examples.append(f"{what}: {detail[:300]}")


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        if name.strip() not in OPERATIONS:
            raise SystemExit(f"--mix: unknown operation {name!r} (known: {', '.join(OPERATIONS)})")
        mix[name.strip()] = float(weight)
    if not any(mix.values()):
        raise SystemExit("--mix: all weights are zero")
    return mix


def request_for(op: str, user: User, rng: random.Random) -> tuple[str, str, Any, int]:
    """(method, path, body, expected status) of one operation for ``user``."""
    if op == "create":
        return "POST", "/api/storage/chat", {"id": str(uuid.uuid4()), "title": f"About {rng.choice(TOPICS)}"}, 201
    if op == "post":
        chat_id = rng.choice(user.chats)
        body = {"id": str(uuid.uuid4()), "chatId": chat_id, "role": "user", "parts": [text_part(phrase(ASKS, rng))]}
        return "POST", "/api/storage/message", body, 201
    if op == "list":
        return "GET", "/api/storage/chat?limit=20", None, 200
    if op == "read":
        return "GET", f"/api/storage/message?chatId={rng.choice(user.chats)}&limit=50", None, 200
    if op == "search":
        return "POST", "/api/storage/search", {"query": phrase(QUERIES, rng), "topK": 5}, 200
    return "GET", "/api/gamification/streak", None, 200


def acknowledge(op: str, user: User, body: Any) -> None:
    """Remember a write the server acknowledged (checked against Redis at the end)."""
    if op == "create":
        user.chats.append(body["id"])
        user.messages[body["id"]] = set()
    elif op == "post":
        user.messages[body["chatId"]].add(body["id"])
        user.learner_messages += 1


async def drive(
    port: int,
    users: list[User],
    clients: int,
    seconds: float,
    mix: dict[str, float],
    timeout: float,
    stats: dict[str, OpStats],
) -> float:
    """``clients`` closed-loop clients for ``seconds``; returns the seconds until the last finished."""
    names, weights = list(mix), list(mix.values())
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        rng = random.Random(f"{number}-{time.time_ns()}")
        user = users[number % len(users)]
        connection = Connection(port)
        try:
            while time.perf_counter() < deadline:
                op = rng.choices(names, weights)[0]
                method, path, body, expected = request_for(op, user, rng)
                started = time.perf_counter()
                try:
                    reply = await asyncio.wait_for(connection.request(method, path, body, user.auth), timeout)
                except (OSError, EOFError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    stats[op].latencies.append(time.perf_counter() - started)
                    stats[op].error(type(exc).__name__, f"{method} {path}: {exc!r}")
                    await connection.close()
                    connection = Connection(port)
                    continue
                stats[op].latencies.append(time.perf_counter() - started)
                if reply.status == expected:
                    stats[op].ok += 1
                    acknowledge(op, user, body)
                elif reply.status == 429:
                    stats[op].limited += 1
                else:
                    stats[op].error(f"HTTP {reply.status}", f"{method} {path}: {reply.body[:300]!r}")
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return time.perf_counter() - started


# --- server processes ----------------------------------------------------------------------------
def server_processes(server: Server) -> dict[int, str]:
    """pid -> role ("web", "indexer", "supervisor") of ``serve`` and everything under it."""
    roles = {server.process.pid: "serve"}
    for pid in descendants(server.process.pid):
        try:
            command = process_name(pid)
        except OSError:
            continue
        if "run_indexer" in command:
            roles[pid] = "indexer"
        elif "multiprocessing" in command and "resource_tracker" not in command:
            roles[pid] = "web"
        elif "uvicorn" in command:
            roles[pid] = "uvicorn"  # the web process itself with --workers 1, the workers' parent otherwise
        else:
            roles[pid] = "other"
    if "web" not in roles.values():
        roles = {pid: "web" if role == "uvicorn" else role for pid, role in roles.items()}
    return roles


def cpu_snapshot(pids: dict[int, str]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = process_usage(pid)[0]
        except (OSError, StopIteration):
            continue
    return found


@dataclass
class CpuUsage:
    """CPU seconds between two points: each server process, this load client, the whole machine."""

    roles: dict[int, str]
    processes: dict[int, float]
    client: float
    machine_busy: float
    machine_total: float
    seconds: float

    def of(self, role: str) -> float:
        return sum(used for pid, used in self.processes.items() if self.roles[pid] == role)

    def describe(self) -> str:
        """Cores used (CPU seconds / wall seconds) per process, and how busy the machine was."""
        cores = os.cpu_count() or 1
        parts, numbered = [], Counter()
        for pid, used in sorted(
            self.processes.items(), key=lambda item: (ROLE_ORDER.index(self.roles[item[0]]), item[0])
        ):
            role = self.roles[pid]
            numbered[role] += 1
            if role in ("web", "indexer") or used > 0.05 * self.seconds:
                parts.append(f"{role} {numbered[role]} {used / self.seconds:.2f}")
        ours = sum(self.processes.values()) + self.client
        busy = self.machine_busy / self.machine_total * cores if self.machine_total else 0.0
        return (
            ", ".join(parts) + f", load client {self.client / self.seconds:.2f}; machine busy {busy:.2f} of {cores} "
            f"cores (this run's processes {ours / self.seconds:.2f}, everything else incl. Redis and other jobs "
            f"{busy - ours / self.seconds:.2f})"
        )


ROLE_ORDER = ["web", "uvicorn", "indexer", "serve", "other"]


class CpuMeter:
    def __init__(self, roles: dict[int, str]) -> None:
        self.roles = roles
        self.begin = self._read()

    def _read(self) -> tuple[dict[int, float], float, tuple[float, float], float]:
        return cpu_snapshot(self.roles), sum(os.times()[:2]), machine_cpu(), time.perf_counter()

    def stop(self) -> CpuUsage:
        (before, client, machine, wall), (after, client_end, machine_end, wall_end) = self.begin, self._read()
        processes = {pid: after[pid] - before[pid] for pid in after if pid in before}
        return CpuUsage(
            self.roles,
            processes,
            client_end - client,
            machine_end[0] - machine[0],
            machine_end[1] - machine[1],
            wall_end - wall,
        )


def model_loaded(pid: int) -> bool:
    """Has this process loaded torch (the local embedding model is loaded right after, on first use)?"""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return any("libtorch" in line for line in maps)
    except OSError:
        return False


async def load_models(server: Server, user: User, timeout: float = 300.0) -> float:
    """Search on fresh connections (which land on any web process) until every web process has
    loaded the embedding model: the first uncached query in a process loads it (seconds), which
    would otherwise show up in the measured window. Returns the seconds it took."""
    web = [pid for pid, role in server_processes(server).items() if role == "web"]
    rng, started = random.Random(), time.perf_counter()

    async def search() -> None:
        connection = Connection(server.port)
        body = {"query": f"{phrase(QUERIES, rng)} {uuid.uuid4().hex[:6]}", "topK": 1}
        expect(await connection.request("POST", "/api/storage/search", body, user.auth), 200, "search")
        await connection.close()

    while not all(model_loaded(pid) for pid in web):
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"the web processes did not load the embedding model in {timeout:.0f}s")
        await asyncio.gather(*(search() for _ in range(2 * len(web))))
    return time.perf_counter() - started


# --- indexer and consistency (in this process, Django pointed at the server's Redis and prefix) -
def configure_django(server: Server) -> None:
    os.environ.update({**server.env, "DJANGO_SETTINGS_MODULE": "mookti.settings"})
    import django

    django.setup()


def backlog() -> dict[str, Any]:
    from storage.search.indexer import index_metrics

    metrics = index_metrics()
    metrics["backlog"] = metrics["lag"] + metrics["pending"]
    return metrics


async def wait_for_indexers(indexers: int, timeout: float) -> float:
    """Until every indexer has joined the group and the backlog is 0; returns the seconds it took."""
    started = time.perf_counter()
    while True:
        metrics = await asyncio.to_thread(backlog)
        if metrics["backlog"] == 0 and metrics["consumers"] >= indexers:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"the indexers did not drain the outbox in {timeout:.0f}s: {metrics}")
        await asyncio.sleep(0.5)


async def watch_backlog(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], (await asyncio.to_thread(backlog))["backlog"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def acknowledged_problems(users: list[User]) -> tuple[list[str], dict[str, int]]:
    """Every acknowledged chat and message is in its indexes, and the indexes hold nothing else;
    each chat's lastMessageAt (hash and activity index) is its newest message; each user's
    gamification counters agree with the learner messages acknowledged, within the daily limit."""
    from mookti.redis import pipeline

    problems: list[str] = []
    counted: Counter = Counter()
    for user in users:
        pipe = pipeline()
        queue_user_reads(pipe, user)
        problems += user_problems(user, pipe.execute(), counted)
    problems += leaderboard_problems(users)
    return problems, counted


def queue_user_reads(pipe: Any, user: User) -> None:
    from gamification import keys as game_keys
    from storage import keys

    pipe.zrange(keys.user_chats(user.id), 0, -1)
    pipe.zrange(keys.user_chats_by_activity(user.id), 0, -1, withscores=True)
    for chat_id in user.chats:
        pipe.zrange(keys.chat_messages(chat_id), 0, -1, withscores=True)
        pipe.hmget(keys.chat(chat_id), "createdAt", "lastMessageAt")
    pipe.hgetall(game_keys.totals(user.id))
    pipe.hgetall(game_keys.weekly_xp(user.id))
    pipe.hgetall(game_keys.streak(user.id))


def user_problems(user: User, replies: list[Any], counted: Counter) -> list[str]:
    from django.conf import settings

    problems = []
    by_created, by_activity = set(replies[0]), dict(replies[1])
    chat_replies, (totals, weekly, streak) = replies[2:-3], replies[-3:]
    expected_chats = set(user.chats)
    counted["chats"] += len(expected_chats)
    for name, found in (("chats", by_created), ("chats-by-activity", set(by_activity))):
        if found != expected_chats:
            missing, unexpected = len(expected_chats - found), len(found - expected_chats)
            problems.append(f"user {user.id} {name}: {missing} acknowledged chats missing, {unexpected} unexpected")
    for chat_id, messages, (created, last) in zip(user.chats, chat_replies[::2], chat_replies[1::2], strict=True):
        expected, found = user.messages[chat_id], {member for member, _ in messages}
        counted["messages"] += len(expected)
        if found != expected:
            missing, unexpected = len(expected - found), len(found - expected)
            problems.append(f"chat {chat_id} messages: {missing} acknowledged missing, {unexpected} unexpected")
        newest = int(max((score for _, score in messages), default=int(created or 0)))
        activity = by_activity.get(chat_id)
        if int(last or created or 0) != newest or (activity is not None and int(activity) != newest):
            problems.append(
                f"chat {chat_id}: lastMessageAt {last}, activity index {activity and int(activity)}, "
                f"newest message {newest}"
            )
    limit = settings.MOOKTI_MESSAGE_LIMITS["pro"]
    if user.learner_messages > limit:
        problems.append(f"user {user.id}: {user.learner_messages} learner messages accepted, the limit is {limit}")
    message_xp = settings.MOOKTI_GAMIFICATION["XP"]["message"]
    messages, xp_messages = int(totals.get("messages", 0)), int(totals.get("xp:message", 0))
    if messages != user.learner_messages or xp_messages != message_xp * user.learner_messages:
        problems.append(
            f"user {user.id} totals: messages {messages}, xp:message {xp_messages}; "
            f"acknowledged learner messages {user.learner_messages}"
        )
    if sum(int(v) for v in weekly.values()) != int(totals.get("xp", 0)):
        problems.append(f"user {user.id}: weekly XP {weekly} does not add up to total XP {totals.get('xp')}")
    if int(streak.get("current", 0)) < 1:
        problems.append(f"user {user.id}: streak {streak} after activity today")
    counted["learner messages"] += user.learner_messages
    counted["weeks"] += len(weekly)
    return problems


def leaderboard_problems(users: list[User]) -> list[str]:
    """The weekly leaderboard entry of each user equals the user's weekly XP (written after the response)."""
    from gamification import keys as game_keys
    from gamification.managers.engine import board_xp
    from mookti.redis import pipeline

    problems = []
    weekly = []
    pipe = pipeline()
    for user in users:
        pipe.hgetall(game_keys.weekly_xp(user.id))
    for user, weeks in zip(users, pipe.execute(), strict=True):
        weekly += [(user.id, week, int(xp)) for week, xp in weeks.items()]
    pipe = pipeline()
    for user_id, week, _ in weekly:
        pipe.zscore(game_keys.leaderboard(week), user_id)
    for (user_id, week, xp), score in zip(weekly, pipe.execute(), strict=True):
        if score is None or board_xp(score) != xp:
            problems.append(f"leaderboard {week}: user {user_id} has {score}, weekly XP is {xp}")
    return problems


def repair_problems(users: list[User]) -> tuple[list[str], list[str], int, int]:
    """(problems, notes, keys scanned, vectors listed) of every ``storage.portability.repair`` check, vectors
    included; a vector store that cannot be listed is a problem (the check did not happen)."""
    from storage.portability import repair
    from storage.search.checks import listable_vector_store
    from storage.search.vectors import user_namespace

    report = repair.RepairReport()
    found = repair.find_problems(progress=False, report=report, vectors=True)
    described = [f"{p.kind}: {p.key}" + (f" ({p.detail})" if p.detail else "") for p in found]
    store = listable_vector_store(repair.RepairReport())
    if store is None or report.notes:
        described.append("vectors not checked: " + "; ".join(report.notes))
        return described, report.notes, report.scanned, 0
    vectors = sum(len(store.list_ids(user_namespace(u.id), "")) for u in users)
    return described, report.notes, report.scanned, vectors


# --- the run ------------------------------------------------------------------------------------
def print_table(stats: dict[str, OpStats], mix: dict[str, float], seconds: float) -> None:
    total_weight = sum(mix.values())
    header = f"{'operation':<18}{'mix':>5}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'429':>7}{'errors':>8}"
    print(header)
    print("-" * len(header))
    everything: list[float] = []
    for op, label in OPERATIONS.items():
        if op not in mix:
            continue
        s = stats[op]
        everything += s.latencies
        line = f"{label:<18}{mix[op] / total_weight:>5.0%}{len(s.latencies):>10}{len(s.latencies) / seconds:>9.1f}"
        line += f"{percentile(s.latencies, 0.5) * 1000:>9.1f}{percentile(s.latencies, 0.99) * 1000:>9.1f}"
        line += f"{s.limited:>7}{sum(s.errors.values()):>8}"
        print(line)
    print("-" * len(header))
    limited = sum(s.limited for s in stats.values())
    errors = sum(sum(s.errors.values()) for s in stats.values())
    line = f"{'all':<18}{'':>5}{len(everything):>10}{len(everything) / seconds:>9.1f}"
    line += (
        f"{percentile(everything, 0.5) * 1000:>9.1f}{percentile(everything, 0.99) * 1000:>9.1f}{limited:>7}{errors:>8}"
    )
    print(line)
    for op, s in stats.items():
        for example in s.examples:
            print(f"  {OPERATIONS[op]} error: {example}")


@dataclass
class Result:
    users: list[User]
    stats: dict[str, OpStats]
    elapsed: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    load_cpu: CpuUsage
    backlog_at_end: dict[str, Any]
    backlog_peak: int
    drained_in: float
    drain_cpu: CpuUsage
    dead: int
    repair: list[str]
    notes: list[str]
    scanned: int
    vectors: int
    acknowledged: list[str]
    counted: dict[str, int]

    @property
    def errors(self) -> int:
        return sum(sum(s.errors.values()) for s in self.stats.values())

    @property
    def problems(self) -> list[str]:
        return self.repair + self.acknowledged


def start_server(args: argparse.Namespace, data_dir: Path) -> Server:
    extra_env = {"MOOKTI_EMBEDDINGS_BACKEND": "local", "MOOKTI_VECTOR_BACKEND": "lancedb"}
    if args.cluster:
        extra_env["CHANNEL_REDIS_URL"] = args.channel_redis_url
    if args.message_limit:
        extra_env["MOOKTI_LIMIT_PRO"] = str(args.message_limit)
    return Server.start(
        args.workers,
        args.redis_url,
        data_dir,
        supervised=True,
        indexers=args.indexers,
        settings_module="mookti.settings",
        rate_limits=True,
        cluster=args.cluster,
        extra_env=extra_env,
    )


async def prepare(server: Server, args: argparse.Namespace, mix: dict[str, float]) -> list[User]:
    """Seed the users, wait for the indexers, warm up."""
    await server.wait_ready()
    print(
        f"manage.py serve --workers {args.workers} --indexers {args.indexers} on port {server.port}, "
        f"{'Redis Cluster' if args.cluster else 'standalone Redis'} {args.redis_url}, prefix {server.prefix}",
        flush=True,
    )
    started = time.perf_counter()
    users = await seed_users(server, args.users or args.clients)
    seeded_in = time.perf_counter() - started
    indexed_in = await wait_for_indexers(args.indexers, args.drain_timeout)
    print(
        f"seeded {len(users)} pro users ({SEED_CHATS} chats x {SEED_MESSAGES} messages each) in {seeded_in:.1f}s; "
        f"indexed {indexed_in:.1f}s later",
        flush=True,
    )
    if "search" in mix:
        print(f"web processes loaded the embedding model in {await load_models(server, users[0]):.1f}s", flush=True)
    if args.warmup > 0:
        warm = {op: OpStats() for op in OPERATIONS}
        await drive(server.port, users, args.clients, args.warmup, mix, args.timeout, warm)
        errors = sum(sum(s.errors.values()) for s in warm.values())
        print(f"warm-up {args.warmup:g}s: {sum(len(s.latencies) for s in warm.values())} requests, {errors} errors")
        await wait_for_indexers(args.indexers, args.drain_timeout)
    return users


async def measure(server: Server, args: argparse.Namespace, mix: dict[str, float], users: list[User]) -> Result:
    """The load window, the drain after it, then the consistency checks."""
    roles = server_processes(server)
    stats = {op: OpStats() for op in OPERATIONS}
    peak, stop = [0], asyncio.Event()
    watcher = asyncio.create_task(watch_backlog(peak, stop))
    load_before, meter = os.getloadavg(), CpuMeter(roles)
    elapsed = await drive(server.port, users, args.clients, args.seconds, mix, args.timeout, stats)
    load_cpu, load_after = meter.stop(), os.getloadavg()
    at_end = await asyncio.to_thread(backlog)
    stop.set()
    await watcher
    meter = CpuMeter(roles)
    drained_in = await wait_for_indexers(args.indexers, args.drain_timeout)
    drain_cpu = meter.stop()
    await asyncio.sleep(0.5)  # leaderboard entries are written right after the response
    repair_found, notes, scanned, vectors = await asyncio.to_thread(repair_problems, users)
    acknowledged, counted = await asyncio.to_thread(acknowledged_problems, users)
    dead = (await asyncio.to_thread(backlog))["dead"]
    return Result(
        users,
        stats,
        elapsed,
        load_before,
        load_after,
        load_cpu,
        at_end,
        max(peak[0], at_end["backlog"]),
        drained_in,
        drain_cpu,
        dead,
        repair_found,
        notes,
        scanned,
        vectors,
        acknowledged,
        counted,
    )


def report(result: Result, args: argparse.Namespace, mix: dict[str, float]) -> None:
    r = result
    print()
    print(
        f"{args.clients} clients ({len(r.users)} pro users), {args.workers} web process(es), {args.indexers} indexers, "
        f"{'Redis Cluster' if args.cluster else 'standalone Redis'}; {r.elapsed:.1f}s measured after "
        f"{args.warmup:g}s warm-up; {os.cpu_count()} CPUs"
    )
    print(
        f"load average (1/5/15 min): before the window {' '.join(f'{x:.2f}' for x in r.load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in r.load_after)}"
    )
    print()
    print_table(r.stats, mix, r.elapsed)
    print()
    requests = sum(len(s.latencies) for s in r.stats.values())
    web = r.load_cpu.of("web")
    print(f"cores used during the window: {r.load_cpu.describe()}")
    if requests:
        print(f"web CPU per request: {web / requests * 1000:.1f} ms (all web processes, whole mix)")
    end = r.backlog_at_end
    print(
        f"indexer backlog at the end of the window: {end['backlog']} entries ({end['lag']} unread, "
        f"{end['pending']} read but not acked, oldest pending {end['oldestPendingSeconds']}s); peak "
        f"{r.backlog_peak}; drained {r.drained_in:.1f}s after the window (indexers used "
        f"{r.drain_cpu.of('indexer') / r.drain_cpu.seconds:.2f} cores meanwhile); dead letters {r.dead}"
    )
    print()
    c = r.counted
    print(
        f"consistency: repair checks over {r.scanned} keys and {r.vectors} vectors: {len(r.repair)} "
        f"problems; acknowledged writes ({c['chats']} chats, {c['messages']} messages, {c['learner messages']} "
        f"learner messages, {c['weeks']} user-weeks of XP): {len(r.acknowledged)} problems"
    )
    for note in r.notes:
        print(f"  note: {note}")
    for line in r.problems[:30]:
        print(f"  {line}")


async def run(args: argparse.Namespace) -> bool:
    mix = parse_mix(args.mix)
    with tempfile.TemporaryDirectory(prefix="mookti-load-") as data_dir:
        server = start_server(args, Path(data_dir))
        try:
            configure_django(server)
            users = await prepare(server, args, mix)
            result = await measure(server, args, mix, users)
        finally:
            server.stop()
            removed = server.delete_keys()
    report(result, args, mix)
    print(f"removed {removed} keys under {server.prefix}")
    ok = result.errors == 0 and not result.problems and result.dead == 0
    print(
        f"verdict: {result.errors} errors, {len(result.problems)} problems, {result.dead} dead letters -> "
        f"{'OK' if ok else 'NOT OK'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive clients")
    parser.add_argument("--users", type=int, default=0, help="pro users the clients act as (default: one per client)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds of the mix before")
    parser.add_argument("--workers", type=int, default=1, help="web processes (uvicorn --workers)")
    parser.add_argument("--indexers", type=int, default=2, help="run_indexer processes")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"operation weights (default {DEFAULT_MIX})")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--cluster", action="store_true", help="--redis-url is a Redis Cluster")
    parser.add_argument(
        "--channel-redis-url", default="redis://127.0.0.1:6379/0", help="non-cluster Redis for pub/sub (--cluster)"
    )
    parser.add_argument("--message-limit", type=int, default=0, help="MOOKTI_LIMIT_PRO (default: the product's)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as an error")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="longest wait for the indexers")
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(run(args)) else 1)


if __name__ == "__main__":
    main()
