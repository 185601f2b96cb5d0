"""Who may read and write what: two users, anonymous callers and the service key."""

from __future__ import annotations

import pytest


@pytest.fixture
def alices_chat(alice):
    chat = alice["api"].post("/api/storage/chat", {"title": "private algebra"}).json()
    msg = (
        alice["api"].post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "secret"}).json()[0]
    )
    return chat, msg


def test_private_chat_of_someone_else_is_404_everywhere(bob, anon, alices_chat):
    chat, msg = alices_chat
    for api in (bob["api"], anon):
        assert api.get(f"/api/storage/chat/{chat['id']}").status_code == 404
        assert api.get("/api/storage/message", {"chatId": chat["id"]}).status_code == 404
        assert api.get(f"/api/storage/message/{msg['id']}").status_code == 404
        assert api.get("/api/storage/vote", {"chatId": chat["id"]}).status_code == 404
        assert api.get(f"/api/storage/chat/{chat['id']}/streams").status_code == 404


def test_nobody_else_writes_to_a_chat(bob, alices_chat):
    chat, msg = alices_chat
    api = bob["api"]
    assert api.post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "x"}).status_code == 404
    assert api.patch(f"/api/storage/chat/{chat['id']}", {"title": "mine"}).status_code == 404
    assert api.delete(f"/api/storage/chat/{chat['id']}").status_code == 404
    assert api.patch(f"/api/storage/message/{msg['id']}", {"content": "edited"}).status_code == 404
    assert (
        api.post("/api/storage/vote", {"chatId": chat["id"], "messageId": msg["id"], "type": "up"}).status_code == 404
    )
    assert api.delete(f"/api/storage/message/after?chatId={chat['id']}&timestamp=0").status_code == 404


def test_public_chat_is_readable_by_anyone_writable_by_owner(alice, bob, anon, alices_chat):
    chat, msg = alices_chat
    alice["api"].patch(f"/api/storage/chat/{chat['id']}", {"visibility": "public"})
    for api in (bob["api"], anon):
        assert api.get(f"/api/storage/chat/{chat['id']}").status_code == 200
        messages = api.get("/api/storage/message", {"chatId": chat["id"]}).json()["messages"]
        assert [m["content"] for m in messages] == ["secret"]
        assert api.get(f"/api/storage/message/{msg['id']}").status_code == 200
    assert (
        bob["api"].post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "x"}).status_code
        == 404
    )
    assert anon.post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "x"}).status_code == 401


def test_chat_list_shows_only_own_chats(alice, bob, alices_chat):
    assert bob["api"].get("/api/storage/chat").json()["chats"] == []
    assert [c["id"] for c in alice["api"].get("/api/storage/chat").json()["chats"]] == [alices_chat[0]["id"]]


def test_documents_are_private(alice, bob, anon):
    doc = alice["api"].post("/api/storage/document", {"title": "t", "content": "c"}).json()
    assert bob["api"].get(f"/api/storage/document/{doc['id']}/versions").status_code == 404
    assert bob["api"].get(f"/api/storage/document/{doc['id']}/suggestions").status_code == 404
    assert bob["api"].delete(f"/api/storage/document/{doc['id']}").status_code == 404
    assert anon.get(f"/api/storage/document/{doc['id']}").status_code == 401


def test_service_key_acts_for_named_user(service, alice, alices_chat):
    from tests.conftest import Api

    acting = Api(service.client._credentials["HTTP_AUTHORIZATION"].split()[1], act_as=alice["id"])
    chats = acting.get("/api/storage/chat").json()["chats"]
    assert [c["id"] for c in chats] == [alices_chat[0]["id"]]
    r = acting.post("/api/storage/message", {"chatId": alices_chat[0]["id"], "role": "assistant", "content": "hi"})
    assert r.status_code == 201


def test_service_key_without_user_only_manages_users(service, alices_chat):
    assert service.get("/api/storage/chat").status_code == 403
    assert service.get("/api/storage/user", {"email": "x@example.com"}).status_code == 200


def test_service_key_naming_unknown_user_is_refused(service):
    from tests.conftest import Api

    key = service.client._credentials["HTTP_AUTHORIZATION"].split()[1]
    assert Api(key, act_as="no-such-user").get("/api/storage/chat").status_code == 401
    assert Api(key, act_as="bad{id}").get("/api/storage/chat").status_code == 401


def test_wrong_or_missing_credentials(alice):
    from tests.conftest import Api

    assert Api("mkt_forged").get("/api/storage/chat").status_code == 401
    assert Api("wrong-service-key", act_as=alice["id"]).get("/api/storage/chat").status_code == 401
    assert Api().get("/api/storage/chat").status_code == 401
    assert Api().post("/api/storage/user", {"email": "a@b.co"}).status_code == 401
    assert alice["api"].post("/api/storage/user", {"email": "a@b.co"}).status_code == 403
    body = Api("wrong").get("/api/storage/chat").json()
    assert body["error"]["code"] == "unauthorized:auth"


def test_expired_token_is_refused(alice):
    from mookti.redis import get_redis
    from storage import keys
    from storage.managers import tokens

    issued = tokens.issue(alice["id"], ttl=60)
    get_redis().delete(keys.token(tokens.digest(issued["token"])))  # what EXPIRE does at the end of the TTL
    from tests.conftest import Api

    assert Api(issued["token"]).get("/api/storage/chat").status_code == 401
