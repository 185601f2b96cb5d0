"""HTTP on the ASGI server without Django's per-request thread hand-off.

Every API view is synchronous. Django's ASGI handler runs each request in a fresh
thread-sensitive context, which starts a new executor thread per request and hops threads for
the request signals too: about a third of a list request's CPU time (issue 16). This bridge runs
Django's WSGI handler instead, in a small pool of long-lived threads: one hand-off per request,
no thread creation. uvicorn keeps serving websockets (Channels) on the same port.

The request body is spooled (in memory up to ``FILE_UPLOAD_MAX_MEMORY_SIZE``, then a temporary
file, as Django's ASGI handler does) before the view runs; the strict JSON parser still sees
``CONTENT_LENGTH`` first and answers 413 for a body over the limit. Responses are collected in
the worker thread and sent whole (no view streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import queue
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.conf import settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WSGIBridge:
    """An ASGI HTTP application running a WSGI application in ``threads`` long-lived threads."""

    def __init__(self, app: WSGIApp, threads: int = 4) -> None:
        self.app = app
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        for number in range(threads):
            threading.Thread(target=self.work, name=f"http-{number + 1}", daemon=True).start()

    def work(self) -> None:
        """A worker thread: run requests and hand each result to its event loop (no executor
        futures to chain: that chaining was the largest single cost left in the hand-off)."""
        while True:
            loop, future, env = self.jobs.get()
            result, error = None, None
            try:
                result = self.run(env)
            except BaseException as exc:  # handed to the awaiting request
                error = exc
            with contextlib.suppress(RuntimeError):  # the event loop closed meanwhile
                loop.call_soon_threadsafe(_settle, future, result, error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the client left before sending its request
        first = message.get("body", b"")
        if not message.get("more_body", False) and len(first) <= settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
            body: Any = io.BytesIO(first)  # the whole body in one message (every GET): no spooling
        else:
            body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115
            body.write(first)
            while message.get("more_body", False):
                message = await receive()
                if message["type"] == "http.disconnect":
                    body.close()
                    return  # the client left before sending its whole request
                body.write(message.get("body", b""))
            body.seek(0)
        with body:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self.jobs.put((loop, future, environ(scope, body)))
            status, headers, content = await future
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def run(self, env: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """In a worker thread: the WSGI call, its status, headers and whole body."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            started[:] = [int(status[:3]), [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]]
            return _no_write

        result = self.app(env, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return started[0], started[1], content


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (server shutting down)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _no_write(data: bytes) -> None:
    raise NotImplementedError("write() is not supported; return the body")


def environ(scope: Scope, body: Any) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    env: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        env[name] = f"{env[name]},{value}" if name in env else value
    return env
