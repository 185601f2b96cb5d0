"""The hot reads (storage/api/hot.py) answer exactly as the DRF views do: status, body, headers.

Each request is sent twice, with the shortcut on and off, and the answers are compared, through
Django's test client (the WSGI shortcut) and through the ASGI application (the event loop's fast
lane, against Django behind the WSGI bridge); the shortcut's quick query check accepts only what
the serializer accepts, with the same values; a 304 costs one Redis round trip for a chat or a
message page, auth included.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from bench import roundtrips
from mookti.api.inputs import quick_query, validated
from mookti.redis import is_cluster
from storage.api import hot
from storage.api import serializers as s
from storage.managers import tokens
from storage.managers.messages import ROLES

# headers that differ between any two answers
VOLATILE = {"Date"}


def answer(headers: dict[str, str], path: str, query: dict[str, Any] | None = None) -> tuple[int, bytes, dict]:
    response = APIClient().get(path, query, **headers)
    kept = {k: v for k, v in response.items() if k not in VOLATILE}
    return response.status_code, response.content, kept


Answer = tuple[int, bytes, dict]


async def asgi_call(method: str, headers: dict[str, str], path: str, query_string: str, body: bytes) -> Answer:
    """The answer of ``mookti.asgi.application`` called in this context (no server, so the round
    trip counter sees its Redis calls), header names lowercased; a body comes in two messages."""
    from mookti.asgi import application

    raw = [(name[5:].lower().replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query_string.encode(),
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    chunks = [body[: len(body) // 2], body[len(body) // 2 :]]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    start, answer = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    kept = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], answer, {k: v for k, v in kept.items() if k.title() not in VOLATILE}


async def asgi_answer(headers: dict[str, str], path: str, query: dict[str, Any] | None = None) -> Answer:
    path, _, inline_query = path.partition("?")
    return await asgi_call("GET", headers, path, urlencode(query) if query else inline_query, b"")


def both(headers: dict[str, str], path: str, query: dict[str, Any] | None = None) -> tuple[Any, Any]:
    hot_answer = answer(headers, path, query)
    hot.ENABLED = False
    try:
        drf_answer = answer(headers, path, query)
    finally:
        hot.ENABLED = True
    return hot_answer, drf_answer


async def asgi_both(headers: dict[str, str], path: str, query: dict[str, Any] | None = None) -> tuple[Any, Any]:
    hot_answer = await asgi_answer(headers, path, query)
    hot.ENABLED = False
    try:
        drf_answer = await asgi_answer(headers, path, query)
    finally:
        hot.ENABLED = True
    return hot_answer, drf_answer


@pytest.fixture
def world(alice, bob):
    api = alice["api"]
    private = api.post("/api/storage/chat", {"title": "mine"}).json()["id"]
    public = api.post("/api/storage/chat", {"title": "open", "visibility": "public"}).json()["id"]
    for chat_id in (private, public):
        batch = [
            {"chatId": chat_id, "role": "user", "parts": [{"type": "text", "text": f"m{i}"}, {"type": "x", "n": i}]}
            for i in range(5)
        ]
        batch.append({"chatId": chat_id, "role": "assistant", "content": "own text", "parts": []})
        assert api.post("/api/storage/message", {"messages": batch}).status_code == 201
    return alice, bob, private, public


def test_same_answers_as_drf(world):
    alice, bob, private, public = world
    first = APIClient().get(f"/api/storage/message?chatId={private}", HTTP_AUTHORIZATION=f"Bearer {alice['token']}")
    message_ids = [m["id"] for m in first.json()["messages"]]
    as_alice = {"HTTP_AUTHORIZATION": f"Bearer {alice['token']}"}
    as_bob = {"HTTP_AUTHORIZATION": f"Bearer {bob['token']}"}
    service = {"HTTP_AUTHORIZATION": f"Bearer {settings.MOOKTI_SERVICE_KEY}", "HTTP_X_MOOKTI_USER": alice["id"]}
    callers = {
        "alice": as_alice,
        "bob": as_bob,
        "service for alice": service,
        "service for nobody": {"HTTP_AUTHORIZATION": f"Bearer {settings.MOOKTI_SERVICE_KEY}"},
        "service for a missing user": {**service, "HTTP_X_MOOKTI_USER": "no-such-user"},
        "service for a bad id": {**service, "HTTP_X_MOOKTI_USER": "bad id!"},
        "unknown token": {"HTTP_AUTHORIZATION": "Bearer mkt_unknown"},
        "malformed token": {"HTTP_AUTHORIZATION": "Bearer nope"},
        "other scheme": {"HTTP_AUTHORIZATION": f"Token {alice['token']}"},
        "empty bearer": {"HTTP_AUTHORIZATION": "Bearer "},
        "anonymous": {},
        "accept json": {**as_alice, "HTTP_ACCEPT": "application/json"},
        "accept any": {**as_alice, "HTTP_ACCEPT": "*/*"},
        "accept indent": {**as_alice, "HTTP_ACCEPT": "application/json; indent=2"},
        "accept html": {**as_alice, "HTTP_ACCEPT": "text/html"},
    }
    requests: list[tuple[str, dict[str, Any] | None]] = [
        ("/api/storage/chat", None),
        ("/api/storage/chat/", {"limit": "1"}),
        ("/api/storage/chat", {"limit": "1", "orderBy": "lastMessageAt"}),
        ("/api/storage/chat", {"endingBefore": public}),
        ("/api/storage/chat", {"startingAfter": private, "limit": "007"}),
        ("/api/storage/chat", {"endingBefore": "no-such-chat"}),
        ("/api/storage/chat", {"limit": "0"}),
        ("/api/storage/chat", {"limit": " 5"}),
        ("/api/storage/chat", {"limit": "101"}),
        ("/api/storage/chat", {"orderBy": "title"}),
        ("/api/storage/chat", {"startingAfter": private, "endingBefore": public}),
        ("/api/storage/chat", {"unknown": "1"}),
        ("/api/storage/chat", {"format": "json"}),
        (f"/api/storage/chat/{private}", None),
        (f"/api/storage/chat/{public}/", None),
        ("/api/storage/chat/no-such-chat", None),
        ("/api/storage/chat/bad%20id", None),
        ("/api/storage/message", {"chatId": private}),
        ("/api/storage/message", {"chatId": public, "limit": "2"}),
        ("/api/storage/message", {"chatId": private, "startingAfter": message_ids[1], "limit": "2"}),
        ("/api/storage/message", {"chatId": private, "endingBefore": message_ids[3]}),
        ("/api/storage/message", {"chatId": private, "endingBefore": "no-such-message"}),
        ("/api/storage/message", {"chatId": "no-such-chat"}),
        ("/api/storage/message", {"chatId": "bad id"}),
        ("/api/storage/message", {"limit": "5"}),
        ("/api/storage/message", {"chatId": private, "limit": "1001"}),
    ]
    compare(callers, requests, both)
    asyncio.run(acompare(callers, requests))


Requests = list[tuple[str, dict[str, Any] | None]]


def compare(callers: dict[str, dict[str, str]], requests: Requests, both: Callable) -> None:
    """Every caller sends every request both ways; a 200's ETag is then sent back both ways too."""
    for caller, headers in callers.items():
        for path, query in requests:
            hot_answer, drf_answer = both(headers, path, query)
            assert hot_answer == drf_answer, (caller, path, query)
            status, _, answered = hot_answer
            if status == 200:  # the same ETag is a 304 on both paths, a stale one a 200
                etag = answered.get("ETag") or answered["etag"]
                for tag in (etag, '"stale"'):
                    again = both({**headers, "HTTP_IF_NONE_MATCH": tag}, path, query)
                    assert again[0] == again[1], (caller, path, query, tag)


async def acompare(callers: dict[str, dict[str, str]], requests: Requests) -> None:
    """:func:`compare` through the ASGI application, in one event loop (one asyncio Redis client)."""
    answers = {}
    for caller, headers in callers.items():
        for path, query in requests:
            answers[caller, path, str(query)] = hot_answer, drf_answer = await asgi_both(headers, path, query)
            assert hot_answer == drf_answer, (caller, path, query)
            if hot_answer[0] == 200:
                for tag in (hot_answer[2]["etag"], '"stale"'):
                    again = await asgi_both({**headers, "HTTP_IF_NONE_MATCH": tag}, path, query)
                    assert again[0] == again[1], (caller, path, query, tag)
    assert len(answers) == len(callers) * len(requests)
    assert {answer[0][0] for answer in answers.values()} >= {200, 400, 401, 403, 404}


def test_the_shortcut_answers_the_plain_requests(world, monkeypatch):
    """The comparison above would pass with the shortcut never taken: it must be taken."""
    alice, _, private, _ = world
    taken = []
    real = hot.drf_error

    def spy(*args: Any) -> Any:
        taken.append("error")
        return real(*args)

    monkeypatch.setattr(hot, "drf_error", spy)
    monkeypatch.setattr(hot, "_render", lambda data, render=hot._render: taken.append("ok") or render(data))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {alice['token']}"}
    plain = ("/api/storage/chat", f"/api/storage/chat/{private}", f"/api/storage/message?chatId={private}")
    for path in plain:
        assert APIClient().get(path, **headers).status_code == 200
    assert APIClient().get("/api/storage/chat/no-such-chat", **headers).status_code == 404
    assert taken == ["ok", "ok", "ok", "error"]

    # on the ASGI server the fast lane answers them all, the 404 with DRF's error handling too
    taken.clear()
    lane = []

    async def spy_lane(scope: dict, receive: Any, send: Any, real: Callable = hot.answer_asgi) -> Any:
        passed_on = await real(scope, receive, send)
        lane.append(passed_on is None)
        return passed_on

    monkeypatch.setattr(hot, "answer_asgi", spy_lane)

    async def send_all() -> list[int]:
        paths = [*plain, "/api/storage/chat/no-such-chat"]
        return [(await asgi_answer(headers, path))[0] for path in paths]

    assert asyncio.run(send_all()) == [200, 200, 200, 404]
    assert lane == [True, True, True, True]
    assert taken == ["ok", "ok", "ok", "error"]


def test_quick_query_accepts_only_what_the_serializer_accepts():
    values = ["", "1", "20", "100", "101", "0", "007", "-1", " 5", "5 ", "1.0", "²", "abc", "a b", "a" * 101]
    values += ["createdAt", "lastMessageAt", "title", "x" * 100, "1e3"]
    for serializer in (s.ChatPageQuery, s.MessagePageQuery):
        names = [*serializer._declared_fields, "other"]
        for name in names:
            for value in values:
                for extra in ({}, {"chatId": "c1"}, {"startingAfter": "c2"}):
                    params = {**extra, name: value}
                    quick = quick_query(serializer, params)
                    if quick is None:
                        continue
                    assert quick == dict(validated(serializer, params)), (serializer, params)


@pytest.fixture
def count_roundtrips():
    roundtrips.install()
    yield roundtrips.counting
    roundtrips.uninstall()


def test_round_trips(world, count_roundtrips):
    if is_cluster():
        pytest.skip("on a cluster a pipeline costs a round trip per node it reaches: these are a standalone Redis's")
    alice, _, private, _ = world
    headers = {"HTTP_AUTHORIZATION": f"Bearer {alice['token']}"}
    paths = {
        "chat": (f"/api/storage/chat/{private}", 1, 1),
        "message page": (f"/api/storage/message?chatId={private}", 2, 1),
        "chat list": ("/api/storage/chat", 3, 2),
    }
    for what, (path, full, not_modified) in paths.items():
        etag = APIClient().get(path, **headers)["ETag"]
        with count_roundtrips() as holder:
            assert APIClient().get(path, **headers).status_code == 200
        assert sum(holder) == full, what
        with count_roundtrips() as holder:
            assert APIClient().get(path, HTTP_IF_NONE_MATCH=etag, **headers).status_code == 304
        assert sum(holder) == not_modified, what

    async def through_the_fast_lane() -> None:  # the same counts, on the asyncio client
        for what, (path, full, not_modified) in paths.items():
            etag = (await asgi_answer(headers, path))[2]["etag"]  # also opens the loop's connection
            with count_roundtrips() as holder:
                assert (await asgi_answer(headers, path))[0] == 200
            assert holder[:2] == [0, full], what
            with count_roundtrips() as holder:
                assert (await asgi_answer({**headers, "HTTP_IF_NONE_MATCH": etag}, path))[0] == 304
            assert holder[:2] == [0, not_modified], what

    asyncio.run(through_the_fast_lane())


def test_expired_token_is_refused_by_both(world):
    alice, *_ = world
    token = tokens.issue(alice["id"], ttl=60)["token"]
    tokens.revoke(token)
    hot_answer, drf_answer = both({"HTTP_AUTHORIZATION": f"Bearer {token}"}, "/api/storage/chat")
    assert hot_answer == drf_answer and hot_answer[0] == 401


def test_quick_messages_agree_with_the_serializer():
    """Whatever quick_messages takes, MessagesIn takes with the same values; the rest it leaves."""
    text = [{"type": "text", "text": "hi"}]
    good = {"chatId": "c1", "role": "user", "parts": text}
    bodies: list[Any] = [
        good,
        {**good, "id": "m1", "attachments": [{"url": "x", "n": None}], "content": "own"},
        {"chatId": "c1", "role": "assistant", "content": "only content"},
        {"chatId": "c1", "role": "system", "content": ""},
        {**good, "createdAt": "2026-01-02T03:04:05.123Z"},
        {**good, "createdAt": 1767225600000},
        {**good, "createdAt": 1.5},
        {"messages": [good, {**good, "id": "a"}, {**good, "id": "b"}]},
        {"messages": [{**good, "id": "a"}, {**good, "id": "a"}]},
        {"messages": []},
        {"messages": [good] * 101},
        {"messages": [good], "other": 1},
        {"messages": "x"},
        {**good, "role": "robot"},
        {**good, "role": 1},
        {**good, "chatId": " c1"},
        {**good, "chatId": 5},
        {**good, "id": "bad id"},
        {**good, "parts": []},
        {**good, "parts": [{"text": "no type"}]},
        {**good, "parts": [{"type": 3}]},
        {**good, "parts": ["x"]},
        {**good, "parts": {"type": "text"}},
        {**good, "attachments": ["x"]},
        {**good, "content": 5},
        {**good, "content": None},
        {**good, "content": "nul\x00"},
        {**good, "createdAt": None},
        {**good, "createdAt": "yesterday"},
        {**good, "createdAt": -1},
        {**good, "extra": 1},
        {"chatId": "c1", "role": "user"},
        {**good, "parts": [{"type": "text", "text": "x" * 70_000}] * 20},
        [good],
        "text",
        None,
    ]
    taken = 0
    for body in bodies:
        quick = s.quick_messages(body)
        if quick is None:
            continue
        taken += 1
        data = body if isinstance(body, dict) and "messages" in body else {"messages": [body]}
        assert quick == [dict(m) for m in validated(s.MessagesIn, data)["messages"]], body
    assert taken >= 8  # the plain bodies above (a fractional createdAt is refused by both)


# --- saveMessages on the fast lane ----------------------------------------------------------------
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


async def asgi_post(headers: dict[str, str], body: Any, content_type: str = "application/json") -> Answer:
    """A POST of ``body`` (JSON) to saveMessages through the ASGI application, in this context."""
    payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
    length = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(payload))}
    return await asgi_call(
        "POST", {**headers, **{f"HTTP_{k}": v for k, v in length.items()}}, "/api/storage/message", "", payload
    )


def same_shape(answer: Answer) -> Answer:
    """An answer with ids and server times masked (each side saves into its own chat)."""
    status, body, headers = answer
    text = ISO_TIME.sub("<time>", UUID.sub("<id>", body.decode()))
    return status, text.encode(), {k: v for k, v in headers.items() if k != "content-length"}


def test_saving_messages_answers_as_drf(alice, bob, monkeypatch):
    """Each body is posted into a fresh chat of each side: through the fast lane, and with it off
    (DRF behind the bridge); statuses, masked bodies and headers are equal, and the fast lane took
    exactly the plain ones."""
    lane: list[bool] = []
    real = hot.answer_asgi

    async def spy_lane(scope: dict, receive: Any, send: Any) -> Any:
        passed_on = await real(scope, receive, send)
        lane.append(passed_on is None)
        return passed_on

    monkeypatch.setattr(hot, "answer_asgi", spy_lane)
    as_alice = {"HTTP_AUTHORIZATION": f"Bearer {alice['token']}"}
    service = {"HTTP_AUTHORIZATION": f"Bearer {settings.MOOKTI_SERVICE_KEY}", "HTTP_X_MOOKTI_USER": alice["id"]}
    text = [{"type": "text", "text": "What is 7 x 8?"}]
    bobs_chat = bob["api"].post("/api/storage/chat", {"title": "bob's"}).json()["id"]
    taken_before = alice["api"].post("/api/storage/chat", {"title": "taken"}).json()["id"]
    saved = alice["api"].post("/api/storage/message", {"chatId": taken_before, "role": "user", "parts": text})
    assert saved.status_code == 201
    taken_id = saved.json()[0]["id"]
    cases: list[tuple[str, dict[str, str], Callable[[str], Any], int, bool]] = [
        ("one message", as_alice, lambda c: {"chatId": c, "role": "user", "parts": text}, 201, True),
        (
            "a batch",
            as_alice,
            lambda c: {"messages": [{"chatId": c, "role": r, "parts": text} for r in ROLES]},
            201,
            True,
        ),
        (
            "given ids and times",
            as_alice,
            lambda c: {
                "messages": [
                    {
                        "chatId": c,
                        "id": str(uuid.uuid4()),
                        "role": "user",
                        "parts": text,
                        "createdAt": "2026-11-30T10:00:00.000Z",
                        "attachments": [{"url": "u"}],
                    }
                ]
            },
            201,
            True,
        ),
        (
            "service for alice",
            service,
            lambda c: {"chatId": c, "role": "assistant", "content": "own", "parts": []},
            201,
            True,
        ),
        ("no such chat", as_alice, lambda c: {"chatId": "no-such-chat", "role": "user", "parts": text}, 404, True),
        ("someone else's chat", as_alice, lambda c: {"chatId": bobs_chat, "role": "user", "parts": text}, 404, True),
        (
            "an id already taken",
            as_alice,
            lambda c: {"chatId": c, "id": taken_id, "role": "user", "parts": text},
            409,
            True,
        ),
        (
            "unknown token",
            {"HTTP_AUTHORIZATION": "Bearer mkt_unknown"},
            lambda c: {"chatId": c, "role": "user", "parts": text},
            401,
            True,
        ),
        ("a bad role", as_alice, lambda c: {"chatId": c, "role": "robot", "parts": text}, 400, False),
        ("not JSON", as_alice, lambda c: b"{nope", 400, False),
        (
            "an Idempotency-Key",
            {**as_alice, "HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())},
            lambda c: {"chatId": c, "role": "user", "parts": text},
            201,
            False,
        ),
        ("no token", {}, lambda c: {"chatId": c, "role": "user", "parts": text}, 401, False),
    ]

    async def post_all() -> None:
        for name, headers, body, status, fast in cases:
            answers = []
            for enabled in (True, False):
                hot.ENABLED = enabled
                try:
                    chat = alice["api"].post("/api/storage/chat", {"title": name}).json()["id"]
                    lane.clear()
                    if "HTTP_IDEMPOTENCY_KEY" in headers:  # a key per request, as a client sends
                        headers = {**headers, "HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
                    answers.append(await asgi_post(headers, body(chat)))
                    assert lane == [enabled and fast and not is_cluster()], name  # a cluster write is DRF's
                    assert answers[-1][0] == status, (name, enabled, answers[-1])
                finally:
                    hot.ENABLED = True
                if status == 201:  # saved where a reader finds it
                    page = alice["api"].get(f"/api/storage/message?chatId={chat}").json()["messages"]
                    assert [m["id"] for m in page] == [m["id"] for m in json.loads(answers[-1][1])], name
            assert same_shape(answers[0]) == same_shape(answers[1]), name

    asyncio.run(post_all())
