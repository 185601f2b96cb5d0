"""Conditional GETs: strong ETags from revision counters, 304 for a current copy."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from bench import roundtrips
from storage.managers.revisions import parse_tags


@pytest.fixture
def count_roundtrips():
    roundtrips.install()
    yield roundtrips.counting
    roundtrips.uninstall()


def tagged(api: Any, path: str, etag: str | None = None, **params: Any) -> Any:
    headers = {"HTTP_IF_NONE_MATCH": etag} if etag else {}
    return api.get(path, params or None, **headers)


def assert_revalidates(api: Any, path: str, change, **params: Any) -> None:
    """200 with an ETag; the same ETag is a bodiless 304; after ``change`` the old one is a 200."""
    first = tagged(api, path, **params)
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first["Cache-Control"] == "private, no-cache"
    again = tagged(api, path, etag, **params)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and again["Cache-Control"] == "private, no-cache"
    change()
    after = tagged(api, path, etag, **params)
    assert after.status_code == 200 and after["ETag"] != etag
    assert tagged(api, path, f'W/{after["ETag"]}, "other"', **params).status_code == 304


def test_chat_and_chat_list(alice):
    api = alice["api"]
    chat_id = api.post("/api/storage/chat", {"title": "a"}).json()["id"]
    message = {"chatId": chat_id, "role": "user", "parts": [{"type": "text", "text": "hi"}]}
    assert_revalidates(
        api, f"/api/storage/chat/{chat_id}", lambda: api.patch(f"/api/storage/chat/{chat_id}", {"title": "b"})
    )
    assert_revalidates(api, f"/api/storage/chat/{chat_id}", lambda: api.post("/api/storage/message", message))
    assert_revalidates(api, "/api/storage/chat", lambda: api.post("/api/storage/message", message))
    assert_revalidates(api, "/api/storage/chat", lambda: api.patch(f"/api/storage/chat/{chat_id}", {"title": "c"}))
    assert_revalidates(api, "/api/storage/chat", lambda: api.post("/api/storage/chat", {}))
    assert_revalidates(api, "/api/storage/chat", lambda: api.delete(f"/api/storage/chat/{chat_id}"))
    # each page has its own tag
    one = tagged(api, "/api/storage/chat", limit=1)["ETag"]
    assert tagged(api, "/api/storage/chat", one, limit=2).status_code == 200


def test_message_pages(alice, bob, anon):
    api = alice["api"]
    chat_id = api.post("/api/storage/chat", {"visibility": "public"}).json()["id"]
    saved = api.post(
        "/api/storage/message",
        {
            "messages": [
                {"chatId": chat_id, "role": "user", "parts": [{"type": "text", "text": f"m{i}"}]} for i in range(3)
            ]
        },
    ).json()
    path = "/api/storage/message"
    new = {"chatId": chat_id, "role": "assistant", "parts": [{"type": "text", "text": "x"}]}
    assert_revalidates(api, path, lambda: api.post(path, new), chatId=chat_id)
    assert_revalidates(
        api,
        path,
        lambda: api.patch(f"{path}/{saved[0]['id']}", {"parts": [{"type": "text", "text": "y"}]}),
        chatId=chat_id,
    )
    assert_revalidates(
        api,
        path,
        lambda: api.delete(f"{path}/after?chatId={chat_id}&timestamp={quote(saved[2]['createdAt'])}"),
        chatId=chat_id,
    )
    etag = tagged(api, path, chatId=chat_id)["ETag"]
    assert tagged(anon, path, etag, chatId=chat_id).status_code == 304  # the same public page
    api.patch(f"/api/storage/chat/{chat_id}", {"visibility": "private"})
    assert tagged(bob["api"], path, etag, chatId=chat_id).status_code == 404  # access is checked first


def test_documents_and_profile(alice, service):
    api = alice["api"]
    doc = api.post("/api/storage/document", {"title": "d", "kind": "text", "content": "a"}).json()
    save = lambda: api.post("/api/storage/document", {"id": doc["id"], "title": "d", "kind": "text", "content": "b"})  # noqa: E731
    assert_revalidates(api, f"/api/storage/document/{doc['id']}", save)
    assert_revalidates(api, f"/api/storage/document/{doc['id']}/versions", save)
    assert_revalidates(
        api,
        f"/api/storage/document/{doc['id']}/versions",
        lambda: api.delete(f"/api/storage/document/{doc['id']}?timestamp={quote(doc['createdAt'])}"),
    )
    assert_revalidates(
        api, f"/api/storage/user/{alice['id']}", lambda: api.patch(f"/api/storage/user/{alice['id']}", {"name": "A"})
    )
    assert_revalidates(
        api, "/api/storage/user/me", lambda: service.patch(f"/api/storage/user/{alice['id']}", {"type": "pro"})
    )


def test_not_modified_costs_no_more_round_trips(alice, count_roundtrips):
    api = alice["api"]
    chat_id = api.post("/api/storage/chat", {}).json()["id"]
    api.post(
        "/api/storage/message",
        {
            "messages": [
                {"chatId": chat_id, "role": "user", "parts": [{"type": "text", "text": f"m{i}"}]} for i in range(50)
            ]
        },
    )
    for path, params in [
        ("/api/storage/message", {"chatId": chat_id, "limit": 50}),
        ("/api/storage/chat", {}),
        (f"/api/storage/chat/{chat_id}", {}),
    ]:
        with count_roundtrips() as full:
            etag = tagged(api, path, **params)["ETag"]
        with count_roundtrips() as cached:
            assert tagged(api, path, etag, **params).status_code == 304
        assert cached[0] <= full[0], path
        assert cached[0] >= 1


def test_if_none_match_parsing():
    assert parse_tags(' "a", W/"b" ,') == {'"a"', '"b"'}
    assert parse_tags("*") == {"*"}
