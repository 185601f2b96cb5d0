"""Regression tests of issue 12 (defects found by outside testing) for the chat-data API."""

from __future__ import annotations

import importlib
import uuid

import pytest


def chat_of(api, **fields):
    r = api.post("/api/storage/chat", fields)
    assert r.status_code == 201, r.content
    return r.json()


# --- 2: a cursor at the very end of a list ---------------------------------------------------------
def test_cursor_at_the_newest_chat_gives_an_empty_last_page(alice):
    api = alice["api"]
    chats = [chat_of(api, title=f"c{n}") for n in range(3)]
    newest = chats[-1]["id"]
    body = api.get(f"/api/storage/chat?startingAfter={newest}").json()
    assert body == {"chats": [], "hasMore": False}


def test_cursor_at_the_oldest_message_gives_an_empty_page(alice):
    api = alice["api"]
    chat = chat_of(api)
    r = api.post(
        "/api/storage/message",
        {"messages": [{"chatId": chat["id"], "role": "user", "content": f"m{n}"} for n in range(3)]},
    )
    oldest = r.json()[0]["id"]
    body = api.get(f"/api/storage/message?chatId={chat['id']}&endingBefore={oldest}").json()
    assert body == {"messages": [], "hasMore": False}


def test_cursor_at_the_newest_document_gives_an_empty_page(alice):
    api = alice["api"]
    ids = [api.post("/api/storage/document", {"title": f"d{n}", "content": "x"}).json()["id"] for n in range(2)]
    body = api.get(f"/api/storage/document?startingAfter={ids[-1]}").json()
    assert body == {"documents": [], "hasMore": False}


# --- 3: the service key acting for B cannot manage A -----------------------------------------------
def test_service_key_acting_for_another_user_cannot_manage_a_user(alice, bob, service):
    from django.conf import settings

    from tests.conftest import Api

    as_bob = Api(settings.MOOKTI_SERVICE_KEY, act_as=bob["id"])
    assert as_bob.patch(f"/api/storage/user/{alice['id']}", {"password": "a new password"}).status_code == 403
    assert as_bob.delete(f"/api/storage/user/{alice['id']}").status_code == 403
    assert as_bob.get(f"/api/storage/user/{alice['id']}").status_code == 403
    assert as_bob.patch(f"/api/storage/user/{bob['id']}", {"name": "Bobby"}).status_code == 200
    # the service key acting for nobody still manages any user
    assert service.patch(f"/api/storage/user/{alice['id']}", {"name": "Al"}).status_code == 200
    assert service.get(f"/api/storage/user/{alice['id']}").json()["name"] == "Al"


# --- 4: votes and stream ids of a public chat are the owner's --------------------------------------
def test_votes_and_streams_of_a_public_chat_are_owner_only(alice, bob, anon):
    api = alice["api"]
    chat = chat_of(api, visibility="public")
    message = api.post("/api/storage/message", {"chatId": chat["id"], "role": "assistant", "content": "hi"}).json()[0]
    assert (
        api.post("/api/storage/vote", {"chatId": chat["id"], "messageId": message["id"], "type": "up"}).status_code
        == 200
    )
    stream_id = f"s-{uuid.uuid4()}"  # stream ids are global: one per resumable response
    assert api.post(f"/api/storage/chat/{chat['id']}/streams", {"streamId": stream_id}).status_code == 201
    for reader in (bob["api"], anon):
        assert reader.get(f"/api/storage/message?chatId={chat['id']}").status_code == 200  # messages stay public
        assert reader.get(f"/api/storage/vote?chatId={chat['id']}").status_code == 404
        assert reader.get(f"/api/storage/chat/{chat['id']}/streams").status_code == 404
    assert len(api.get(f"/api/storage/vote?chatId={chat['id']}").json()) == 1
    assert [s["id"] for s in api.get(f"/api/storage/chat/{chat['id']}/streams").json()] == [stream_id]


# --- 5: numbers are not strings ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/storage/chat", {"title": 123}, "title"),
        ("/api/storage/document", {"title": 7, "content": "x"}, "title"),
        ("/api/storage/document", {"title": "t", "content": 7}, "content"),
        ("/api/storage/chat", {"id": 12345}, "id"),
    ],
)
def test_numbers_are_refused_where_text_is_required(alice, path, body, field):
    from tests.conftest import snapshot_keys

    before = snapshot_keys()
    r = alice["api"].post(path, body)
    assert r.status_code == 400 and field in r.json()["error"]["fields"], r.content
    assert snapshot_keys() == before


def test_message_content_must_be_text(alice):
    chat = chat_of(alice["api"])
    r = alice["api"].post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": 42})
    assert r.status_code == 400 and "content" in str(r.json()["error"]["fields"])


# --- 6: bad credentials are 401 -----------------------------------------------------------------------
def test_wrong_password_and_unknown_email_are_401_with_one_body(alice, anon):
    wrong = anon.post("/api/storage/token", {"email": alice["email"], "password": "not the password"})
    unknown = anon.post("/api/storage/token", {"email": "nobody@example.com", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


# --- 7: RFC 3339 timestamps, four-digit years ----------------------------------------------------------
def test_early_timestamps_keep_four_digit_years(alice):
    chat = chat_of(alice["api"], createdAt="1700-03-04T05:06:07.089Z")
    assert chat["createdAt"] == "1700-03-04T05:06:07.089Z"


@pytest.mark.parametrize("moment", ["0092-11-19T14:45:31Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z"])
def test_timestamps_that_cannot_be_stored_exactly_are_refused(alice, moment):
    r = alice["api"].post("/api/storage/chat", {"createdAt": moment})
    assert r.status_code == 400 and "createdAt" in r.json()["error"]["fields"], r.content


def test_iso_always_has_four_digit_years():
    from datetime import datetime

    from mookti.ids import iso, rfc3339, to_us

    moment = to_us(datetime(92, 11, 19, 14, 45, 31))
    assert iso(moment) == "0092-11-19T14:45:31.000Z"
    assert rfc3339(moment) == "0092-11-19T14:45:31.000000Z"


# --- 1 (the same pattern elsewhere): a guest's email holds the millisecond it was created --------------
def test_two_guests_of_one_millisecond_both_get_accounts(service, monkeypatch):
    users_module = importlib.import_module("storage.managers.users")  # the module, not the manager it exports
    draws = iter([7, 7, 8])
    monkeypatch.setattr(users_module.time, "time_ns", lambda: 1_733_000_000_000_000_000)
    monkeypatch.setattr(users_module.secrets, "randbelow", lambda _: next(draws))
    first = service.post("/api/storage/user/guest")
    second = service.post("/api/storage/user/guest")
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert first.json()["email"] != second.json()["email"]
