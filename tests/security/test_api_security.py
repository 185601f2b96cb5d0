"""Security checks across the whole HTTP API.

The endpoint list comes from the OpenAPI schema, so a new endpoint is covered without editing
this file: every id parameter gets key-injection attempts, every endpoint gets another user's
ids, credentials are tried expired, revoked, forged and missing. Each attempt must get the
right error, leak nothing, and write nothing.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import Client

from storage.managers import tokens
from tests.conftest import Api, snapshot_keys

INJECTIONS = ["a:b", "{x}", "x}y", "a b", "a\tb", "a*", "..", "a/../b", "a\x00b", "x" * 101, "é", "a\nb"]
BODIES = {
    ("post", "/api/storage/chat/{id}/streams/"): {"streamId": "s1"},
    ("patch", "/api/storage/chat/{id}/"): {"title": "hijacked"},
    ("patch", "/api/storage/message/{id}/"): {"content": "hijacked"},
    ("post", "/api/storage/document/{id}/suggestions/"): {"suggestions": [{"originalText": "a", "suggestedText": "b"}]},
    ("patch", "/api/storage/user/{id}/"): {"name": "hijacked"},
    ("patch", "/api/gamification/goals/{id}/"): {"progress": 100},
    ("put", "/api/gamification/progress/{id}/"): {"currentNode": "n1"},
    ("post", "/api/gamification/progress/{id}/sync/"): {"currentNode": "n1"},
}


@pytest.fixture(scope="module")
def schema_paths():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    return response.json()["paths"]


def id_routes(paths: dict) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, operations in paths.items()
        if "{id}" in path
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def call(api: Api, method: str, path: str, body: dict | None):
    client = api.client
    if method in ("get", "delete"):
        return getattr(client, method)(path)
    return getattr(client, method)(path, body or {}, format="json")


def test_schema_lists_id_routes(schema_paths):
    routes = id_routes(schema_paths)
    assert len(routes) >= 15, routes


def test_key_injection_in_every_path_id(alice, schema_paths):
    before = snapshot_keys()
    for method, path in id_routes(schema_paths):
        for bad in INJECTIONS:
            url = path.replace("{id}", quote(bad, safe=""))
            response = call(alice["api"], method, url, BODIES.get((method, path)))
            assert response.status_code in (400, 403, 404), (method, url, response.status_code, response.content[:200])
            if response.status_code == 400:
                assert response.json()["error"]["code"].startswith("bad_request")
    assert snapshot_keys() == before


@pytest.mark.parametrize("param", ["chatId", "startingAfter", "endingBefore"])
def test_key_injection_in_query_ids(alice, param):
    before = snapshot_keys()
    for bad in INJECTIONS:
        base = "/api/storage/message" if param == "chatId" else "/api/storage/chat"
        url = f"{base}?{param}={quote(bad, safe='')}" + (
            "&chatId=c1" if base.endswith("message") and param != "chatId" else ""
        )
        response = alice["api"].client.get(url)
        assert response.status_code == 400, (url, response.content[:200])
        assert param in response.json()["error"]["fields"]
    assert snapshot_keys() == before


@pytest.fixture
def alices_things(alice):
    api = alice["api"]
    chat = api.post("/api/storage/chat", {"title": "mine"}).json()
    message = api.post("/api/storage/message", {"chatId": chat["id"], "role": "user", "content": "private"}).json()[0]
    document = api.post("/api/storage/document", {"title": "notes", "content": "private"}).json()
    goal = api.post("/api/gamification/goals", {"title": "Finish algebra"}).json()
    api.put("/api/gamification/progress/algebra-1", {"currentNode": "n1"})
    return {
        "chat": chat["id"],
        "message": message["id"],
        "document": document["id"],
        "goal": goal["id"],
        "user": alice["id"],
    }


def other_user_attempts(things: dict) -> list[tuple[str, str, dict | None]]:
    chat, message, document, goal, user = (things[k] for k in ("chat", "message", "document", "goal", "user"))
    return [
        ("get", f"/api/storage/chat/{chat}", None),
        ("patch", f"/api/storage/chat/{chat}", {"title": "hijacked", "visibility": "public"}),
        ("delete", f"/api/storage/chat/{chat}", None),
        ("get", f"/api/storage/chat/{chat}/streams", None),
        ("post", f"/api/storage/chat/{chat}/streams", {"streamId": "s1"}),
        ("get", f"/api/storage/message?chatId={chat}", None),
        ("post", "/api/storage/message", {"chatId": chat, "role": "user", "content": "x"}),
        ("get", f"/api/storage/message/{message}", None),
        ("patch", f"/api/storage/message/{message}", {"content": "hijacked"}),
        ("delete", f"/api/storage/message/after?chatId={chat}&timestamp=0", None),
        ("get", f"/api/storage/vote?chatId={chat}", None),
        ("post", "/api/storage/vote", {"chatId": chat, "messageId": message, "type": "down"}),
        ("get", f"/api/storage/document/{document}", None),
        ("get", f"/api/storage/document/{document}/versions", None),
        ("post", "/api/storage/document", {"id": document, "title": "hijacked", "content": "x"}),
        ("delete", f"/api/storage/document/{document}", None),
        ("get", f"/api/storage/document/{document}/suggestions", None),
        (
            "post",
            f"/api/storage/document/{document}/suggestions",
            {"suggestions": [{"originalText": "a", "suggestedText": "b"}]},
        ),
        ("get", f"/api/gamification/goals/{goal}", None),
        ("patch", f"/api/gamification/goals/{goal}", {"progress": 100}),
        ("delete", f"/api/gamification/goals/{goal}", None),
        ("get", f"/api/storage/user/{user}", None),
        ("patch", f"/api/storage/user/{user}", {"name": "hijacked"}),
        ("delete", f"/api/storage/user/{user}", None),
        ("post", "/api/storage/search", {"query": "what did she write", "chatId": chat}),
    ]


def test_another_users_ids_on_every_endpoint(alice, bob, alices_things):
    before = snapshot_keys()
    for method, path, body in other_user_attempts(alices_things):
        response = call(bob["api"], method, path, body)
        assert response.status_code in (403, 404) or (path.endswith("search") and response.status_code in (200, 503)), (
            method,
            path,
            response.status_code,
        )
        assert b"private" not in response.content, (method, path)
        assert b"Finish algebra" not in response.content
    after = snapshot_keys()
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # only Bob's own bookkeeping may change (nothing of Alice's)
    assert not {k for k in changed if alices_things["user"] in k or alices_things["chat"] in k}, changed
    alice_view = alice_api_state(alice, alices_things)
    assert alice_view == ("mine", "private", "notes")


def alice_api_state(alice, things):
    api = alice["api"]
    return (
        api.get(f"/api/storage/chat/{things['chat']}").json()["title"],
        api.get(f"/api/storage/message/{things['message']}").json()["content"],
        api.get(f"/api/storage/document/{things['document']}").json()["title"],
    )


def test_progress_is_per_user(alice, bob, alices_things):
    mine = bob["api"].get("/api/gamification/progress/algebra-1")
    assert mine.status_code in (200, 404)
    if mine.status_code == 200:
        assert mine.json().get("currentNode") != "n1"


@pytest.mark.parametrize(
    "credential",
    [
        "revoked",
        "expired",
        "forged",
        "service-key-wrong",
        "service-key-no-user",
        "service-key-unknown-user",
        "basic-auth",
    ],
)
def test_bad_credentials_are_refused(alice, credential):
    headers = {}
    if credential == "revoked":
        token = tokens.issue(alice["id"])["token"]
        tokens.revoke(token)
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    elif credential == "expired":
        token = tokens.issue(alice["id"], ttl=60)["token"]
        from mookti.redis import get_redis
        from storage import keys

        get_redis().delete(keys.token(tokens.digest(token)))
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    elif credential == "forged":
        headers["HTTP_AUTHORIZATION"] = "Bearer mkt_" + "A" * 43
    elif credential == "service-key-wrong":
        headers.update(
            HTTP_AUTHORIZATION="Bearer " + settings.MOOKTI_SERVICE_KEY[:-1] + "x", HTTP_X_MOOKTI_USER=alice["id"]
        )
    elif credential == "service-key-no-user":
        headers["HTTP_AUTHORIZATION"] = "Bearer " + settings.MOOKTI_SERVICE_KEY
    elif credential == "service-key-unknown-user":
        headers.update(HTTP_AUTHORIZATION="Bearer " + settings.MOOKTI_SERVICE_KEY, HTTP_X_MOOKTI_USER="nobody-here")
    else:
        headers["HTTP_AUTHORIZATION"] = "Basic YWxpY2U6cGFzc3dvcmQ="
    client = Client()
    for path in ("/api/storage/chat", "/api/gamification/streak", "/api/realtime/ticket/"):
        method = client.post if path.endswith("ticket/") else client.get
        response = method(path, **headers)
        assert response.status_code in (401, 403), (credential, path, response.status_code)
        assert alice["id"] not in response.content.decode()


def test_a_bare_user_id_is_not_a_credential(alice):
    client = Client()
    for headers in ({"HTTP_AUTHORIZATION": f"Bearer {alice['id']}"}, {"HTTP_X_MOOKTI_USER": alice["id"]}):
        assert client.get("/api/storage/chat", **headers).status_code == 401


def test_secrets_never_in_error_bodies_or_logs(alice, caplog):
    secrets = [settings.MOOKTI_SERVICE_KEY, alice["token"], settings.SECRET_KEY]
    wrong_service = settings.MOOKTI_SERVICE_KEY + "x"
    client = Client()
    with caplog.at_level(logging.DEBUG):
        responses = [
            client.get("/api/storage/chat", HTTP_AUTHORIZATION=f"Bearer {wrong_service}"),
            client.get("/api/storage/chat/a:b", HTTP_AUTHORIZATION=f"Bearer {alice['token']}"),
            client.post(
                "/api/storage/chat",
                "{bad",
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {alice['token']}",
            ),
            client.post(
                "/api/storage/token",
                {"email": alice["email"], "password": "wrong-password"},
                content_type="application/json",
            ),
            client.get("/api/storage/chat", HTTP_AUTHORIZATION=f"Bearer {alice['token']}x"),
        ]
    bodies = " ".join(r.content.decode() for r in responses)
    logs = caplog.text
    for secret in [*secrets, wrong_service, "wrong-password"]:
        assert secret not in bodies
        assert secret not in logs
    assert not re.search(r"Traceback", bodies + logs)


def test_oversized_and_deeply_nested_json(alice):
    deep = "[" * 5000 + "]" * 5000
    response = alice["api"].client.post("/api/storage/chat", deep, content_type="application/json")
    assert response.status_code == 400
    huge = '{"title": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    response = alice["api"].client.post("/api/storage/chat", huge, content_type="application/json")
    assert response.status_code == 413


def test_websocket_refuses_ids_and_tokens_in_the_query_string(alice):
    """Only a ticket (single use) or the bearer subprotocol authenticate a socket."""
    from channels.testing.websocket import WebsocketCommunicator

    from tests.realtime.conftest import next_frame, run, ws_application

    async def attempt(path: str, subprotocols: list[str] | None = None) -> dict:
        comm = WebsocketCommunicator(ws_application(), path, subprotocols=subprotocols)
        connected, _ = await comm.connect(timeout=5)
        return await next_frame(comm) if connected else {"closed": "refused"}

    async def scenario() -> list[dict]:
        return [
            await attempt(f"/ws/events/?userId={alice['id']}"),
            await attempt(f"/ws/events/?token={alice['token']}"),
            await attempt(f"/ws/events/?ticket={alice['token']}"),
            await attempt("/ws/events/", ["mookti.bearer", f"{alice['token']}x"]),
            await attempt("/ws/events/", ["bearer", alice["token"]]),
        ]

    outcomes = run(scenario)
    assert all(o.get("closed") in (4401, 4403, "refused") for o in outcomes), outcomes
