"""Redis connections killed under a running indexer and a live web server with open websockets.

Only this test's processes lose their connections (found through /proc, killed with
``CLIENT KILL ADDR``), so the shared Redis and other test runs are left alone. Afterwards new
writes are indexed and every socket gets every new event, in order, once. Heartbeats are slow
(60 s) so the events can only come through the channel layer's pokes (or, if a socket had to
reconnect, its replay).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from websockets.exceptions import ConnectionClosed

from mookti import events
from mookti.redis import get_redis
from storage.search.vectors import user_namespace
from tests.realtime.conftest import Server, run, start_server, ws_connect, ws_frame, ws_until_ready

MESSAGES_AFTER = 3
DEADLINE = 30.0


# --- finding and killing a process's Redis connections -------------------------------------------
def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    """``0100007F:18EB`` (IPv4 little-endian : port) -> ("127.0.0.1", 6379)."""
    ip, port = hex_address.split(":")
    return ".".join(str(int(ip[i : i + 2], 16)) for i in (6, 4, 2, 0)), int(port, 16)


def connections(pid: int, servers: set[tuple[str, int]]) -> dict[tuple[str, int], list[str]]:
    """The local ``ip:port`` of each established TCP connection from ``pid`` to each of ``servers``."""
    inodes = _socket_inodes(pid)
    found: dict[tuple[str, int], list[str]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == "01" and inode in inodes and _address(remote) in servers:  # 01: ESTABLISHED
            ip, port = _address(local)
            found.setdefault(_address(remote), []).append(f"{ip}:{port}")
    return found


def redis_servers() -> set[tuple[str, int]]:
    """Every Redis this deployment talks to: the data Redis (each node of a cluster) and the channel layer's."""
    if settings.REDIS_CLUSTER:
        data = {(node.host, int(node.port)) for node in get_redis().get_nodes()}
    else:
        parts = urlsplit(settings.REDIS_URL)
        data = {(parts.hostname or "127.0.0.1", parts.port or 6379)}
    channel = urlsplit(settings.CHANNEL_REDIS_URL)
    return data | {(channel.hostname or "127.0.0.1", channel.port or 6379)}


def kill_connections(pids: dict[str, int]) -> dict[str, int]:
    """CLIENT KILL every Redis connection of these processes; how many were killed, per process.

    The connections are listed before the killing client connects, so it never kills itself.
    """
    servers = redis_servers()
    found = {name: connections(pid, servers) for name, pid in pids.items()}
    killed = dict.fromkeys(pids, 0)
    for host, port in servers:
        control = redis.Redis(host=host, port=port, socket_timeout=5)
        try:
            for name, by_server in found.items():
                for address in by_server.get((host, port), []):
                    killed[name] += control.client_kill_filter(addr=address)
        finally:
            control.close()
    return killed


# --- the scenario ----------------------------------------------------------------------------------
async def post_message(server: Server, user: dict[str, Any], chat_id: str, text: str) -> dict[str, Any]:
    body = {"chatId": chat_id, "role": "assistant", "parts": [{"type": "text", "text": text}]}
    status, saved = await server.aapi("POST", "/api/storage/message", user["token"], body)
    assert status == 201, saved
    return saved[0]


class Tab:
    """A websocket of the user that records its frames and resumes from its last event if it is closed."""

    def __init__(self, server: Server, token: str) -> None:
        self.server, self.token = server, token
        self.frames: list[dict[str, Any]] = []
        self.reconnects = 0
        self.ws: Any = None

    async def open(self) -> None:
        last = self.frames[-1]["id"] if self.frames else None
        url = self.server.ws_url(lastEventId=last) if last else self.server.ws_url()
        self.ws = await ws_connect(url, token=self.token)
        self.frames += await ws_until_ready(self.ws)

    async def read(self, quiet: float) -> None:
        """Record frames until none came for ``quiet`` seconds."""
        while True:
            try:
                self.frames.append(await ws_frame(self.ws, timeout=quiet))
            except TimeoutError:
                return
            except ConnectionClosed:
                self.reconnects += 1
                await self.open()


def wait_indexed(pinecone: Any, namespace: str, vector_ids: set[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not vector_ids <= set(pinecone.vectors(namespace)):
        assert time.monotonic() < deadline, f"not indexed: {vector_ids - set(pinecone.vectors(namespace))}"
        time.sleep(0.05)


def test_killed_redis_connections_are_replaced_and_nothing_is_lost(remote, make_user, make_indexer):
    pinecone = remote["pinecone"]
    alice = make_user(name="Alice", user_type="pro")
    namespace = user_namespace(alice["id"])
    server = start_server(MOOKTI_WS_HEARTBEAT="60")
    indexer = make_indexer("survivor", BLOCK_MS=200)  # mostly sitting in a blocking XREADGROUP
    stop = threading.Event()
    failures: list[BaseException] = []

    def index() -> None:
        try:
            indexer.run_forever(stop)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    thread = threading.Thread(target=index, name="indexer")
    thread.start()
    try:

        async def scenario() -> tuple[dict[str, int], list[dict[str, Any]], str, list[Tab]]:
            tabs = [Tab(server, alice["token"]), Tab(server, alice["token"])]
            for tab in tabs:
                await tab.open()
            status, chat = await server.aapi("POST", "/api/storage/chat", alice["token"], {"title": "Kill"})
            assert status == 201, chat
            first = await post_message(server, alice, chat["id"], "before the kill")
            for tab in tabs:
                await tab.read(quiet=1.0)
                assert [f["type"] for f in tab.frames] == ["chat.created", "message.created"]
            await asyncio.to_thread(wait_indexed, pinecone, namespace, {f"msg:{chat['id']}#{first['id']}"})
            last_before = tabs[0].frames[-1]["id"]

            killed = await asyncio.to_thread(kill_connections, {"tests": os.getpid(), "server": server.process.pid})
            posted = []
            deadline = asyncio.get_running_loop().time() + DEADLINE
            # keep writing until every socket has every new message (a poke sent while the layer
            # was reconnecting is lost; the next one shows the gap and the socket reads the stream)
            while len(posted) < MESSAGES_AFTER or not all(
                {m["id"] for m in posted} <= {f.get("data", {}).get("id") for f in tab.frames} for tab in tabs
            ):
                assert asyncio.get_running_loop().time() < deadline, [tab.frames for tab in tabs]
                posted.append(await post_message(server, alice, chat["id"], f"after the kill {len(posted)}"))
                for tab in tabs:
                    await tab.read(quiet=0.5)
            for tab in tabs:
                await tab.ws.close()
            return killed, posted, last_before, tabs

        killed, posted, last_before, tabs = run(scenario)
        vector_ids = {f"msg:{m['chatId']}#{m['id']}" for m in posted}
        wait_indexed(pinecone, namespace, vector_ids)  # the indexer carried on after losing its connection
    finally:
        stop.set()
        thread.join(timeout=30)
        server.stop()

    assert killed["tests"] >= 1 and killed["server"] >= 2, killed  # the indexer's; the server's data and layer
    assert not failures and not thread.is_alive()
    expected = [entry_id for entry_id, _, _ in events.read(alice["id"], start=f"({last_before}")]
    assert len(expected) == len(posted)
    for tab in tabs:
        after = [f["id"] for f in tab.frames[2:]]
        assert after == expected, (tab.reconnects, after)  # every new event, in order, once
