"""Hot reads: the GETs a chat client polls, dispatched without DRF's per-request machinery.

Listing chats, getting a chat and reading a message page are most of an app's requests, and
DRF's dispatch (a ``Request`` wrapper, authenticator/parser/negotiator/permission instances,
content negotiation, the response's rendering and finalising) was about half of their CPU
time (issue 16). A viewset with :class:`HotReads` keeps its DRF view for everything, and puts a
shortcut in front of it for ``GET`` of the actions in its ``hot`` mapping. The shortcut runs
only for the plain case; every other request goes to the DRF view untouched:

- a bearer credential that needs Redis to judge (a user token of the right form, or the service
  key with a valid ``X-Mookti-User``: :class:`storage.api.auth.BearerCredential`); no header,
  another scheme, the service key acting for nobody or a malformed token go to DRF, which
  answers them without Redis;
- ``Accept`` absent, ``*/*`` or ``application/json`` (DRF's negotiation answers
  ``application/json`` to each; anything else, e.g. ``; indent=4``, goes to DRF);
- a query whose values are in their plain form (:func:`mookti.api.inputs.quick_query`); a value
  the serializer must judge (and maybe reject with a 400) goes to DRF.

Then the credential is checked in the read's first pipeline (one round trip less than DRF's
authentication, which has its own), so a 304 costs one round trip for a chat or a message page,
before any entity is decoded or rendered. The answer has DRF's status, body and headers
(``Allow``, ``Content-Type``, ``ETag``, ``Cache-Control``; the middleware adds the rest as for
any view); an error raised after the shortcut took the request (a bad token, a 404, Redis down)
is answered by the DRF view's own exception handling and finalising, so the error body and
headers are the same (``tests/storage/test_hot_reads.py`` compares both paths). The schema is
the DRF view's: the shortcut answers the same operation.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, QueryDict
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, get_resolver

from mookti.api.exceptions import json_error
from mookti.api.parsers import MAX_DEPTH, FastJSONRenderer, _depth
from mookti.redis import Plan, arun_plan, is_cluster, run_plan
from storage.api.auth import BearerCredential

logger = logging.getLogger("django.request")
Receive = Callable[[], Awaitable[dict[str, Any]]]
# tests switch the shortcut off to compare it with the DRF path
ENABLED = True
MEDIA_TYPE = "application/json"
PLAIN_ACCEPT = frozenset({None, "*/*", MEDIA_TYPE})
_render = FastJSONRenderer().render

# A hot handler: (request, credential, **url kwargs) -> a read plan of (status, data, headers); it
# raises Skip (before any Redis call) to leave the request to DRF.
Answer = tuple[int, Any, dict[str, str]]
Handler = Callable[..., Plan[Answer]]
# A hot write: (credential, parsed JSON body) -> a plan of (status, data, headers); Skip as above.
WriteHandler = Callable[[BearerCredential, Any], Plan[Answer]]


class Skip(Exception):
    """Raised by a hot handler before it calls Redis: DRF answers the request instead."""


class HotReads:
    """Viewset mixin: ``hot = {"list": handler, ...}`` answers ``GET`` of those actions through
    :func:`hot_view` when the request is plain (see the module docstring); ``hot_writes =
    {"create": handler}`` answers a plain ``POST`` of those on the ASGI server's event loop
    (:func:`answer_asgi`; a :data:`WriteHandler`)."""

    hot: dict[str, Handler] = {}
    hot_writes: dict[str, WriteHandler] = {}

    @classmethod
    def as_view(cls, actions: dict[str, str] | None = None, **initkwargs: Any) -> Callable:
        view = super().as_view(actions, **initkwargs)  # type: ignore[misc]
        actions = actions or {}
        handler = cls.hot.get(actions.get("get", ""))
        writer = cls.hot_writes.get(actions.get("post", ""))
        if handler is None and writer is None:
            return view
        return hot_view(view, handler, writer)


def _plain(request: HttpRequest) -> BearerCredential | None:
    """The credential of a request the shortcut may answer, or None (DRF answers it)."""
    if not ENABLED or request.method != "GET" or request.META.get("HTTP_ACCEPT") not in PLAIN_ACCEPT:
        return None
    credential = BearerCredential.of(request.META)
    if credential is None or (request.META.get("QUERY_STRING") and "format" in request.GET):
        return None
    return credential


def hot_view(view: Callable, handler: Handler | None, writer: WriteHandler | None = None) -> Callable:
    """``view`` (a DRF viewset view) with the shortcut for plain GETs in front (WSGI requests; the
    ASGI server's requests take :func:`answer_asgi` before they reach Django)."""

    def shortcut(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        credential = _plain(request) if handler else None
        if credential is None:
            return view(request, *args, **kwargs)
        try:
            plan = handler(request, credential, **kwargs)
        except Skip:
            return view(request, *args, **kwargs)
        try:
            answer = run_plan(plan)
        except Exception as exc:  # answered as the DRF view answers it
            return drf_error(view, request, exc, credential, args, kwargs)
        return _response(view, answer)

    functools.update_wrapper(shortcut, view)  # cls, actions, initkwargs, csrf_exempt: as DRF's view
    shortcut.hot = HotRoute(view, handler, writer)  # type: ignore[attr-defined]
    return shortcut


@functools.cache
def allowed_methods(view: Callable) -> str:
    """DRF's ``Allow`` header of ``view``'s route."""
    return _drf_view(view, HttpRequest(), (), {}).default_response_headers["Allow"]


def _response(view: Callable, answer: Answer) -> HttpResponse:
    code, data, headers = answer
    if data is None:
        response = HttpResponse(status=code)
        del response["Content-Type"]  # DRF drops it for an empty body
    else:
        response = HttpResponse(_render(data), status=code, content_type=MEDIA_TYPE)
    for name, value in headers.items():
        response[name] = value
    response["Allow"] = allowed_methods(view)
    return response


# --- on the ASGI server: the same answers without Django's handler or a worker thread -------------
# The middleware that adds headers to an API answer, in the order Django runs their responses.
_HEADER_MIDDLEWARE = [
    middleware(lambda request: None) for middleware in (XFrameOptionsMiddleware, CommonMiddleware, SecurityMiddleware)
]


@dataclass(frozen=True)
class HotRoute:
    view: Callable
    read: Handler | None
    write: WriteHandler | None


@functools.lru_cache(maxsize=4096)
def _route(path: str) -> tuple[HotRoute, dict[str, Any]] | None:
    """The hot route ``path`` resolves to, and its URL kwargs; None for any other path."""
    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return None
    route = getattr(match.func, "hot", None)
    return (route, match.kwargs) if route else None


async def answer_asgi(scope: dict[str, Any], receive: Receive, send: Callable) -> Receive | None:
    """Answer a plain hot ``GET`` or ``POST`` on the event loop (Redis through the asyncio client).

    Returns None once answered; else the ``receive`` to hand the request on with (Django answers
    it; a ``POST`` body read here is replayed). An exception raised by the plan is answered as the
    DRF view answers it (:func:`drf_error`), never by running the request again: a write may have
    been applied.
    """
    found = _route(scope["path"]) if ENABLED and not scope.get("root_path") else None
    if found is None:
        return receive
    route, kwargs = found
    body = b""
    if scope["method"] == "POST":
        if route.write is None or not _plain_write(scope):
            return receive
        body, receive = await _read_body(receive)
        if body is None:
            return receive
    elif route.read is None:
        return receive
    request = LaneRequest(scope)
    credential = BearerCredential.of(request.META) if scope["method"] == "POST" else _plain(request)
    if credential is None or (settings.SECURE_SSL_REDIRECT and not request.is_secure()):
        return receive
    try:
        if scope["method"] == "POST":
            plan = route.write(credential, _json(body))  # type: ignore[misc]
        else:
            plan = route.read(request, credential, **kwargs)  # type: ignore[misc]
    except Skip:
        return receive
    try:
        code, data, extra = await arun_plan(plan)
    except Exception as exc:
        django_request = ASGIRequest(scope, io.BytesIO(body))
        response = _error(route.view, django_request, exc, credential, kwargs)
        for middleware in _HEADER_MIDDLEWARE:
            response = middleware.process_response(django_request, response)
        code, body = response.status_code, response.content
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    else:  # the headers _response and the middleware would give, without building them per request
        body = b"" if data is None else _render(data)
        headers = [] if data is None else [(b"Content-Type", MEDIA_TYPE.encode())]
        headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
        headers += [(b"Allow", allowed_methods(route.view).encode()), (b"Content-Length", b"%d" % len(body))]
        headers += _middleware_headers(request.is_secure())
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return None


class LaneRequest:
    """What a hot handler reads of a Django request (``META``, ``GET``, the full path, the scheme),
    from an ASGI scope: Django's ``ASGIRequest`` does more per request than the rest of a fast-lane
    read (issue 16); one is built only for an error answer. The methods are Django's own."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.method, self.path = scope["method"], scope["path"]
        meta = {"QUERY_STRING": scope["query_string"].decode("latin-1")}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            name = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
            value = raw_value.decode("latin-1")
            meta[name] = f"{meta[name]},{value}" if name in meta else value
        self.META = meta

    @functools.cached_property
    def GET(self) -> QueryDict:
        return QueryDict(self.META["QUERY_STRING"])

    def _get_scheme(self) -> str:
        return self.scope.get("scheme") or "http"

    get_full_path = HttpRequest.get_full_path
    _get_full_path = HttpRequest._get_full_path
    scheme = HttpRequest.scheme
    is_secure = HttpRequest.is_secure


@functools.cache
def _middleware_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """What the header middleware adds to an API answer: the same for every answer of a scheme."""
    request = HttpRequest()
    request.is_secure = lambda: secure  # type: ignore[method-assign]
    response = HttpResponse()
    for middleware in _HEADER_MIDDLEWARE:
        response = middleware.process_response(request, response)
    own = {"Content-Type", "Content-Length"}
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items() if name not in own]


def _plain_write(scope: dict[str, Any]) -> bool:
    """A POST the fast lane may take: JSON, small, without an ``Idempotency-Key`` (its guard and
    replay live in the middleware), on a standalone Redis (a cluster write is synchronous)."""
    headers = dict(scope["headers"])
    length = headers.get(b"content-length", b"")
    return (
        headers.get(b"content-type") == b"application/json"
        and b"idempotency-key" not in headers
        and headers.get(b"accept") in (None, b"*/*", b"application/json")
        and length.isdigit()
        and int(length) <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        and not is_cluster()
    )


async def _read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """The request body (None if the client left), and a ``receive`` that replays it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _json(body: bytes) -> Any:
    """The body as JSON, as the strict parser reads it; Skip (DRF answers the 400) if it is not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Skip from None
    if _depth(data) > MAX_DEPTH:
        raise Skip
    return data


def _error(view: Callable, request: HttpRequest, exc: Exception, credential: BearerCredential, kwargs: dict) -> Any:
    """The DRF view's answer to ``exc``; an exception DRF does not handle is logged and answered
    as Django answers it (a 500, in the API's error body)."""
    try:
        return drf_error(view, request, exc, credential, (), kwargs).render()
    except Exception:
        logger.exception("Internal Server Error: %s", request.path)
        return json_error(HttpResponse(status=500))


def _drf_view(view: Callable, request: HttpRequest, args: tuple, kwargs: dict) -> Any:
    """A viewset instance set up as DRF's view function sets it up before ``dispatch``."""
    self = view.cls(**view.initkwargs)
    actions = view.actions
    if "get" in actions and "head" not in actions:
        actions["head"] = actions["get"]
    self.action_map = actions
    for method, action in actions.items():
        setattr(self, method, getattr(self, action))
    self.request, self.args, self.kwargs = request, args, kwargs
    return self


def drf_error(
    view: Callable, request: HttpRequest, exc: Exception, credential: BearerCredential, args: tuple, kwargs: dict
) -> HttpResponse:
    """The DRF view's answer to ``exc`` raised in its handler: its exception handler, renderer and
    response headers, without running the request again (no second Redis read)."""
    self = _drf_view(view, request, args, kwargs)
    drf_request = self.initialize_request(request, *args, **kwargs)
    self.request = drf_request
    self.headers = self.default_response_headers
    self.format_kwarg = self.get_format_suffix(**kwargs)
    drf_request.accepted_renderer, drf_request.accepted_media_type = self.perform_content_negotiation(drf_request)
    if credential.principal is not None:
        drf_request.user = credential.principal
    response = self.handle_exception(exc)
    return self.finalize_response(drf_request, response, *args, **kwargs)
