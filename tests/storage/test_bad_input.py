"""Bad input: a clear 4xx naming the field, never a 500, and nothing written to Redis."""

from __future__ import annotations

import json

import pytest

from tests.conftest import snapshot_keys

CHAT = "__chat__"  # replaced by the fixture chat's id
MSG = {"chatId": CHAT, "role": "user", "content": "hi"}


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


CASES = [
    # (name, method, path, body (dict/list/str raw), status, field expected in error.fields or None)
    ("invalid json", "post", "/api/storage/chat", "{not json", 400, None),
    ("NaN literal", "post", "/api/storage/chat", '{"title": NaN}', 400, None),
    ("json array body", "post", "/api/storage/chat", [1, 2], 400, None),
    ("unknown field", "post", "/api/storage/chat", {"titel": "x"}, 400, "titel"),
    ("bad visibility", "post", "/api/storage/chat", {"visibility": "secret"}, 400, "visibility"),
    ("title too long", "post", "/api/storage/chat", {"title": "x" * 501}, 400, "title"),
    ("title wrong type", "post", "/api/storage/chat", {"title": ["a"]}, 400, "title"),
    ("id with braces", "post", "/api/storage/chat", {"id": "a{b}"}, 400, "id"),
    ("id with colon", "post", "/api/storage/chat", {"id": "chat:1"}, 400, "id"),
    ("id with space", "post", "/api/storage/chat", {"id": "a b"}, 400, "id"),
    ("id with control char", "post", "/api/storage/chat", {"id": "a\x00b"}, 400, "id"),
    ("bad createdAt", "post", "/api/storage/chat", {"createdAt": "yesterday"}, 400, "createdAt"),
    ("fractional epoch milliseconds", "post", "/api/storage/chat", {"createdAt": 1.5}, 400, "createdAt"),
    ("message without chatId", "post", "/api/storage/message", {"role": "user", "content": "x"}, 400, "messages"),
    ("bad role", "post", "/api/storage/message", {**MSG, "role": "robot"}, 400, "messages"),
    ("parts not a list", "post", "/api/storage/message", {**MSG, "parts": "text"}, 400, "messages"),
    ("oversized message", "post", "/api/storage/message", {**MSG, "content": "x" * 70_000}, 413, "parts"),
    ("deeply nested parts", "post", "/api/storage/message", {**MSG, "parts": nested(60)}, 400, None),
    ("empty batch", "post", "/api/storage/message", {"messages": []}, 400, "messages"),
    ("batch too big", "post", "/api/storage/message", {"messages": [MSG] * 101}, 400, "messages"),
    (
        "duplicate ids in batch",
        "post",
        "/api/storage/message",
        {"messages": [{**MSG, "id": "d"}, {**MSG, "id": "d"}]},
        400,
        "messages",
    ),
    ("message chatId injection", "post", "/api/storage/message", {**MSG, "chatId": "x}:y"}, 400, "messages"),
    ("limit zero", "get", "/api/storage/chat?limit=0", None, 400, "limit"),
    ("limit not a number", "get", "/api/storage/chat?limit=abc", None, 400, "limit"),
    ("both cursors", "get", "/api/storage/chat?startingAfter=a&endingBefore=b", None, 400, "endingBefore"),
    ("cursor injection", "get", "/api/storage/chat?endingBefore=a%7Bb%7D", None, 400, "endingBefore"),
    ("unknown query param", "get", "/api/storage/chat?limt=5", None, 400, "limt"),
    ("messages without chatId", "get", "/api/storage/message", None, 400, "chatId"),
    (
        "bad delete timestamp",
        "delete",
        f"/api/storage/message/after?chatId={CHAT}&timestamp=soon",
        None,
        400,
        "timestamp",
    ),
    ("bad vote type", "post", "/api/storage/vote", {"chatId": CHAT, "messageId": "m", "type": "meh"}, 400, "type"),
    ("bad document kind", "post", "/api/storage/document", {"title": "t", "kind": "video"}, 400, "kind"),
    ("document without title", "post", "/api/storage/document", {"content": "c"}, 400, "title"),
    ("oversized document", "post", "/api/storage/document", {"title": "t", "content": "x" * 2_100_000}, 413, "content"),
    ("hours zero", "get", "/api/storage/message/count?hours=0", None, 400, "hours"),
    ("unknown timezone", "patch", "/api/storage/user/__me__", {"timezone": "Mars/Olympus"}, 400, "timezone"),
    (
        "preferences not an object",
        "patch",
        "/api/storage/user/__me__",
        {"preferences": ["not", "a", "dict"]},
        400,
        "preferences",
    ),
    ("path id injection", "get", "/api/storage/chat/a:b", None, 400, "id"),
    ("path id braces", "delete", "/api/storage/document/%7Bx%7D", None, 400, "id"),
    ("empty suggestions", "post", "/api/storage/document/d1/suggestions", {"suggestions": []}, 400, "suggestions"),
    ("stream id injection", "post", f"/api/storage/chat/{CHAT}/streams", {"streamId": "s:1"}, 400, "streamId"),
    ("empty update", "patch", "/api/storage/message/m1", {}, 400, None),
]


@pytest.fixture
def chat(alice):
    return alice["api"].post("/api/storage/chat", {"title": "t"}).json()


@pytest.mark.parametrize(("name", "method", "path", "body", "status", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_without_writes(alice, chat, name, method, path, body, status, field):
    client = alice["api"].client
    path = path.replace(CHAT, chat["id"]).replace("__me__", alice["id"])
    if isinstance(body, dict | list):
        body = json.loads(json.dumps(body).replace(CHAT, chat["id"]))
    before = snapshot_keys()
    if body is None:
        response = getattr(client, method)(path)
    else:
        raw = body if isinstance(body, str) else json.dumps(body)
        response = getattr(client, method)(path, raw, content_type="application/json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] and error["message"]
    if field:
        assert field in error.get("fields", {}), error
    assert snapshot_keys() == before


def test_body_over_the_server_limit_is_413(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = alice["api"].client.post(
        "/api/storage/chat", json.dumps({"title": "x" * 2000}), content_type="application/json"
    )
    assert r.status_code == 413


def test_unsupported_media_type_is_415(alice):
    r = alice["api"].client.post("/api/storage/chat", "title=x", content_type="text/plain")
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type:api"
