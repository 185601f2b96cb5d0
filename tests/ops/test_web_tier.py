"""The cheap web tier (issue 16): the WSGI bridge on uvicorn, orjson in and out, fast timestamps,
output serializers without DRF's per-request field copies, browser middleware only for browsers."""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from mookti.api.fields import OutputSerializer, TimestampField
from mookti.api.parsers import FastJSONRenderer
from mookti.ids import iso
from storage.api.serializers import ChatOut, MessageOut
from tests.realtime.conftest import Server, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = start_server()
    yield started
    started.stop()


def test_the_bridge_serves_bodies_queries_and_errors(server, alice):
    token = alice["token"]
    status, chat = server.api("POST", "/api/storage/chat", token, {"title": "Brüche ☕"})
    assert status == 201 and chat["title"] == "Brüche ☕"
    status, page = server.api("GET", "/api/storage/chat?limit=1&orderBy=createdAt", token)
    assert status == 200 and [c["id"] for c in page["chats"]] == [chat["id"]]
    status, body = server.api("GET", "/api/storage/chat?limit=0", token)
    assert status == 400 and "limit" in json.dumps(body)
    status, body = server.api("GET", "/api/storage/chat/%C3%A9t%C3%A9", token)  # non-ASCII path: a bad id
    assert status == 400


def test_the_bridge_answers_413_for_a_big_body(server, alice, settings):
    big = {"title": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}
    status, body = server.api("POST", "/api/storage/chat", alice["token"], big)
    assert status == 413, body


def test_token_requests_get_no_session_or_csrf_cookie_and_the_admin_still_does(server, alice):
    request = urllib.request.Request(
        server.base + "/api/storage/chat", headers={"Authorization": f"Bearer {alice['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers.get("Set-Cookie") is None
    with urllib.request.urlopen(server.base + "/admin/login/", timeout=10) as response:
        assert "csrftoken=" in (response.headers.get("Set-Cookie") or "")


def test_iso_matches_datetime_formatting():
    values = [0, 1, 999, -1, 1_764_633_600_123_456, 253_402_300_799_999_999]
    values += [random.randint(-(10**15), 10**17) for _ in range(20_000)]
    for value in values:
        moment = datetime.fromtimestamp(value // 1_000_000, tz=UTC).replace(microsecond=value % 1_000_000)
        assert iso(value) == moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), value
    assert iso(str(values[4])) == iso(values[4]) and iso(None) is None and iso("") is None


def test_output_serializers_answer_as_drf_does():
    chat = {"id": "c1", "userId": "u1", "title": "T", "visibility": "private", "createdAt": 1, "lastMessageAt": None}
    message = {
        "id": "m",
        "chatId": "c",
        "role": "user",
        "parts": [{"type": "text"}],
        "attachments": [],
        "content": "x",
        "createdAt": 1_764_633_600_123_000,
        "extra": "not shown",
    }
    for cls, item in ((ChatOut, chat), (MessageOut, message)):
        plain = type("Plain", (serializers.Serializer,), dict(cls._declared_fields))
        assert cls([item, item], many=True).data == plain([item, item], many=True).data
        assert cls(item).data == plain(item).data
    with pytest.raises(KeyError):  # a missing field is DRF's error, not a silent gap
        ChatOut({"id": "c1"}).data  # noqa: B018

    class Renamed(OutputSerializer):
        when = TimestampField(source="createdAt")

    assert Renamed({"createdAt": 0}).data == {"when": "1970-01-01T00:00:00.000Z"}  # DRF's own path


def test_renderer_is_drf_compatible():
    renderer = FastJSONRenderer()
    assert renderer.render({"a": "\u2028é", "b": [1, None]}) == '{"a":"\\u2028é","b":[1,null]}'.encode()
    assert renderer.render(None) == b""
    assert json.loads(renderer.render({"lazy": gettext_lazy("Not found.")})) == {"lazy": "Not found."}
    assert renderer.render({"a": 1}, "application/json; indent=2", {"indent": 2}) == b'{\n  "a": 1\n}'
