"""Users, guests and API tokens."""

from __future__ import annotations

import uuid

from mookti.redis import get_redis
from storage import keys
from storage.managers import tokens, users


def test_service_creates_user_and_finds_by_normalized_email(service):
    r = service.post(
        "/api/storage/user",
        {
            "email": "  Ada@Example.COM ",
            "password": "s3cret-pass",
            "name": "Ada",
            "type": "pro",
            "timezone": "Europe/Paris",
        },
    )
    assert r.status_code == 201, r.content
    user = r.json()
    assert user["email"] == "ada@example.com"
    assert user["type"] == "pro" and user["timezone"] == "Europe/Paris" and user["name"] == "Ada"
    assert user["createdAt"].endswith("Z")
    assert "password" not in user
    found = service.get("/api/storage/user", {"email": "ADA@example.com"}).json()
    assert [u["id"] for u in found] == [user["id"]]
    assert service.get("/api/storage/user", {"email": "nobody@example.com"}).json() == []


def test_email_is_unique_and_claimed_atomically(service):
    first = service.post("/api/storage/user", {"email": "dup@example.com"})
    second = service.post("/api/storage/user", {"email": "DUP@example.com"})
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["fields"]["email"]
    assert get_redis().get(keys.user_email("dup@example.com")) == first.json()["id"]


def test_guest_user_like_ai_chatbot(service):
    r = service.post("/api/storage/user/guest")
    assert r.status_code == 201
    guest = r.json()
    assert guest["isGuest"] is True
    assert guest["email"].startswith("guest-")


def test_login_issues_token_and_revoke_refuses_it(service):
    service.post("/api/storage/user", {"email": "tok@example.com", "password": "correct horse"})
    anon_token = service.client.__class__()
    bad = anon_token.post("/api/storage/token", {"email": "tok@example.com", "password": "wrong!!"}, format="json")
    assert bad.status_code == 401  # issue 12: bad credentials are a 401
    r = anon_token.post("/api/storage/token", {"email": "tok@example.com", "password": "correct horse"}, format="json")
    assert r.status_code == 201, r.content
    token = r.json()["token"]
    anon_token.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    me = anon_token.get("/api/storage/user/me")
    assert me.status_code == 200 and me.json()["email"] == "tok@example.com"
    assert anon_token.delete("/api/storage/token/current").status_code == 204
    assert anon_token.get("/api/storage/user/me").status_code == 401


def test_token_is_stored_hashed_with_ttl(alice):
    digest = tokens.digest(alice["token"])
    client = get_redis()
    assert client.hget(keys.token(digest), "userId") == alice["id"]
    assert 0 < client.ttl(keys.token(digest)) <= 30 * 24 * 3600
    assert not client.exists(keys.token(alice["token"]))  # never the plain token


def test_user_updates_own_profile_but_not_type(alice, bob):
    api = alice["api"]
    r = api.patch(f"/api/storage/user/{alice['id']}", {"name": "Alice L.", "timezone": "Asia/Tokyo"})
    assert r.status_code == 200 and r.json()["timezone"] == "Asia/Tokyo"
    assert api.patch(f"/api/storage/user/{alice['id']}", {"type": "pro"}).status_code == 403
    assert api.get(f"/api/storage/user/{bob['id']}").status_code == 403


def test_service_changes_type_and_type_index_follows(service, alice):
    r = service.patch(f"/api/storage/user/{alice['id']}", {"type": "basic"})
    assert r.status_code == 200 and r.json()["type"] == "basic"
    client = get_redis()
    assert client.zscore(keys.users_by_type("basic"), alice["id"]) is not None
    assert client.zscore(keys.users_by_type("free"), alice["id"]) is None


def test_delete_user_removes_all_their_data(service, alice):
    api = alice["api"]
    chat = api.post("/api/storage/chat", {"title": "bye"}).json()
    api.post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "hello"})
    api.post("/api/storage/document", {"title": "Notes", "content": "x"})
    assert service.delete(f"/api/storage/user/{alice['id']}").status_code == 204
    client = get_redis()
    assert users.get(alice["id"]) is None
    assert not client.exists(keys.chat(chat["id"]), keys.user_email(alice["email"]), keys.user_chats(alice["id"]))
    assert api.get("/api/storage/chat").status_code == 401  # the token went with the user


def test_a_password_is_taken_as_sent_spaces_included(service):
    email = f"spaces-{uuid.uuid4().hex[:8]}@example.com"
    created = service.post("/api/storage/user", {"email": email, "password": "       x"})
    assert created.status_code == 201, created.content  # 8 characters: not trimmed into a short one
    login = service.client.__class__()
    trimmed = login.post("/api/storage/token", {"email": email, "password": "x"}, format="json")
    assert trimmed.status_code == 401
    exact = login.post("/api/storage/token", {"email": email, "password": "       x"}, format="json")
    assert exact.status_code == 201, exact.content
