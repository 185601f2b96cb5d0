"""Live-update test helpers: async scenarios, in-process sockets, a real uvicorn server.

Scenarios are plain ``async def`` functions run with :func:`run` (no asyncio plugin needed);
everything talks to the real Redis under this run's prefix, and the channel layer is the
real Redis pub/sub layer.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from channels.testing.websocket import WebsocketCommunicator
from websockets.asyncio.client import ClientConnection, connect

from mookti.redis import get_async_redis
from storage.realtime.routing import websocket_urlpatterns

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_TIMEOUT = 60
FRAME_TIMEOUT = 5


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async scenario on a fresh loop, closing this loop's Redis client afterwards."""

    async def main() -> Any:
        try:
            return await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT)
        finally:
            client = get_async_redis()
            await client.aclose()
            if hasattr(client, "connection_pool"):  # a cluster client closes its nodes' pools in aclose()
                await client.connection_pool.disconnect()

    return asyncio.run(main())


# --- in-process sockets (WebsocketCommunicator) --------------------------------------------------
def ws_application():
    from channels.routing import URLRouter

    return URLRouter(websocket_urlpatterns)


async def communicator(
    *, ticket: str | None = None, token: str | None = None, last_event_id: str | None = None
) -> WebsocketCommunicator:
    query = []
    if ticket:
        query.append(f"ticket={ticket}")
    if last_event_id:
        query.append(f"lastEventId={last_event_id}")
    path = "/ws/events/" + ("?" + "&".join(query) if query else "")
    subprotocols = ["mookti.bearer", token] if token else None
    comm = WebsocketCommunicator(ws_application(), path, subprotocols=subprotocols)
    connected, subprotocol = await comm.connect(timeout=FRAME_TIMEOUT)
    assert connected
    comm.accepted_subprotocol = subprotocol
    return comm


async def next_frame(comm: WebsocketCommunicator, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
    """The next frame, skipping heartbeats; a close becomes ``{"closed": code}``."""
    while True:
        output = await comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            return {"closed": output.get("code")}
        frame = json.loads(output["text"])
        if frame.get("type") != "heartbeat":
            return frame


async def until_ready(comm: WebsocketCommunicator) -> list[dict[str, Any]]:
    """Frames before ``ready`` (the replay), checking that ``ready`` comes."""
    frames = []
    while (frame := await next_frame(comm))["type"] != "ready":
        frames.append(frame)
    return frames


# --- a real ASGI server ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"ws://127.0.0.1:{self.port}/ws/events/" + (f"?{query}" if query else "")

    def api(
        self, method: str, path: str, token: str, body: Any = None, timeout: float = 10, **headers: str
    ) -> tuple[int, Any]:
        """One HTTP call (stdlib client): (status, decoded JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    async def aapi(self, method: str, path: str, token: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        return await asyncio.to_thread(self.api, method, path, token, body, **headers)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(**env_overrides: str) -> Server:
    """``uvicorn mookti.asgi:application`` on a free port, in this test run's Redis namespace."""
    port = free_port()
    env = {**os.environ, "MOOKTI_WS_HEARTBEAT": "0.5", **env_overrides}
    command = [sys.executable, "-m", "uvicorn", "mookti.asgi:application", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env=env,
    )
    server = Server(process, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("uvicorn did not start")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = start_server()
    yield started
    started.stop()


async def ws_connect(url: str, token: str | None = None) -> ClientConnection:
    subprotocols = ["mookti.bearer", token] if token else None
    return await connect(url, subprotocols=subprotocols, open_timeout=10)  # type: ignore[list-item]


async def ws_frame(ws: ClientConnection, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
    """The next frame from a real socket, skipping heartbeats."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame.get("type") != "heartbeat":
            return frame


async def ws_until_ready(ws: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    while (frame := await ws_frame(ws))["type"] != "ready":
        frames.append(frame)
    return frames
