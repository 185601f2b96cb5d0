"""End to end: the real ASGI server (uvicorn) with real websocket clients and the Redis pub/sub layer."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.exceptions import ConnectionClosed

from mookti import events, localredis
from storage.managers.messages import EVENT_FIELDS
from tests.realtime.conftest import (
    FRAME_TIMEOUT,
    Server,
    free_port,
    run,
    start_server,
    ws_connect,
    ws_frame,
    ws_until_ready,
)

MESSAGE = "/api/storage/message"


async def close_code(ws) -> int | None:
    """Read until the server closes the socket; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def new_chat(server: Server, user: dict) -> str:
    status, chat = await server.aapi("POST", "/api/storage/chat", user["token"], {"title": "Live"})
    assert status == 201, chat
    return chat["id"]


async def post_message(server: Server, user: dict, chat_id: str, text: str) -> dict:
    """Posts a message; returns what its ``message.created`` event carries."""
    body = {"chatId": chat_id, "role": "assistant", "parts": [{"type": "text", "text": text}]}
    status, saved = await server.aapi("POST", MESSAGE, user["token"], body)
    assert status == 201, saved
    return {name: saved[0][name] for name in EVENT_FIELDS}


async def ticket_url(server: Server, user: dict, **params: str) -> str:
    status, body = await server.aapi("POST", "/api/realtime/ticket/", user["token"])
    assert status == 200, body
    return server.ws_url(ticket=body["ticket"], **params)


def test_api_write_reaches_the_owner_and_not_another_user(server, alice, bob):
    async def scenario():
        owner = await ws_connect(await ticket_url(server, alice))
        other = await ws_connect(server.ws_url(), token=bob["token"])
        await ws_until_ready(owner)
        await ws_until_ready(other)
        chat_id = await new_chat(server, alice)
        created = await ws_frame(owner)
        message = await post_message(server, alice, chat_id, "live!")
        delivered = await ws_frame(owner)
        bob_chat = await new_chat(server, bob)
        bob_first = await ws_frame(other)  # alice's two events never reached bob
        await owner.close()
        await other.close()
        return chat_id, created, message, delivered, bob_chat, bob_first

    chat_id, created, message, delivered, bob_chat, bob_first = run(scenario)
    assert created["type"] == "chat.created" and created["data"]["id"] == chat_id
    assert delivered["type"] == "message.created"
    assert delivered["data"] == message  # the REST API's JSON shape
    assert set(delivered) == {"id", "type", "data"}
    assert bob_first["type"] == "chat.created" and bob_first["data"]["id"] == bob_chat


def test_two_sockets_of_one_user_both_receive(server, alice):
    async def scenario():
        tabs = [await ws_connect(server.ws_url(), token=alice["token"]) for _ in range(2)]
        for tab in tabs:
            await ws_until_ready(tab)
        chat_id = await new_chat(server, alice)
        frames = [await ws_frame(tab) for tab in tabs]
        for tab in tabs:
            await tab.close()
        return chat_id, frames

    chat_id, frames = run(scenario)
    assert [f["data"]["id"] for f in frames] == [chat_id, chat_id]
    assert frames[0]["id"] == frames[1]["id"]


def test_reconnect_gets_exactly_the_20_missed_events_in_order(server, alice):
    async def scenario():
        ws = await ws_connect(server.ws_url(), token=alice["token"])
        await ws_until_ready(ws)
        chat_id = await new_chat(server, alice)
        last_id = (await ws_frame(ws))["id"]
        await ws.close()
        missed = [await post_message(server, alice, chat_id, f"missed {n}") for n in range(20)]
        ws = await ws_connect(await ticket_url(server, alice, lastEventId=last_id))
        replayed = await ws_until_ready(ws)
        live = await post_message(server, alice, chat_id, "live again")
        after = await ws_frame(ws)
        await ws.close()
        return missed, replayed, live, after

    missed, replayed, live, after = run(scenario)
    assert len(replayed) == 20
    assert [f["type"] for f in replayed] == ["message.created"] * 20
    assert [f["data"] for f in replayed] == missed
    ids = [events.parse_id(f["id"]) for f in replayed]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert after["data"] == live and events.parse_id(after["id"]) > ids[-1]


def test_a_trimmed_id_gets_resync(server, alice, settings):
    settings.MOOKTI_EVENTS_MAXLEN = 10
    first = events.publish(alice["id"], "test.n", {"n": 0})
    for n in range(1, 250):
        events.publish(alice["id"], "test.n", {"n": n})

    async def scenario():
        ws = await ws_connect(server.ws_url(lastEventId=first), token=alice["token"])
        frames = await ws_until_ready(ws)
        await ws.close()
        return frames

    assert run(scenario) == [{"type": "resync"}]


def test_bad_and_revoked_tokens_are_refused(server, alice, make_user):
    carol = make_user(name="Carol")

    async def scenario():
        bad = await close_code(await ws_connect(server.ws_url(), token="mkt_wrong"))
        used_ticket_url = await ticket_url(server, carol)
        await (await ws_connect(used_ticket_url)).close()
        reused = await close_code(await ws_connect(used_ticket_url))
        open_socket = await ws_connect(server.ws_url(), token=carol["token"])
        await ws_until_ready(open_socket)
        status, _ = await server.aapi("DELETE", "/api/storage/token/current", carol["token"])
        assert status == 204
        closed_on_heartbeat = await close_code(open_socket)
        revoked = await close_code(await ws_connect(server.ws_url(), token=carol["token"]))
        return bad, reused, closed_on_heartbeat, revoked

    assert run(scenario) == (4401, 4401, 4401, 4401)


@pytest.fixture(scope="module")
def server_without_layer():
    """A second server whose channel layer points at a closed port (a pub/sub outage)."""
    started = start_server(CHANNEL_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    yield started
    started.stop()


def test_channel_layer_outage_does_not_fail_the_write_and_clients_catch_up(server, server_without_layer, alice):
    async def scenario():
        degraded = await ws_connect(server_without_layer.ws_url(), token=alice["token"])
        start = await ws_until_ready(degraded)
        chat_id = await new_chat(server_without_layer, alice)
        message = await post_message(server_without_layer, alice, chat_id, "during the outage")
        polled = [await ws_frame(degraded), await ws_frame(degraded)]  # the socket polls the stream
        await degraded.close()
        elsewhere = await ws_connect(server.ws_url(lastEventId="0"), token=alice["token"])
        replayed = await ws_until_ready(elsewhere)
        await elsewhere.close()
        return start, message, polled, replayed

    start, message, polled, replayed = run(scenario)
    assert start == []
    assert [f["type"] for f in polled] == ["chat.created", "message.created"]
    assert polled[1]["data"] == message
    assert [f["id"] for f in replayed] == [f["id"] for f in polled]


def raw_socket_that_never_reads(server: Server, token: str) -> socket.socket:
    """A websocket handshake over a plain socket with a tiny receive buffer, then silence."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        (
            "GET /ws/events/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: mookti.bearer, {token}\r\n\r\n"
        ).encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_a_slow_client_does_not_block_others(server, alice, bob):
    """One of alice's sockets never reads; her other socket and bob's still get everything."""
    payload = "x" * 20_000

    async def scenario():
        fast = await ws_connect(server.ws_url(), token=alice["token"])
        other = await ws_connect(server.ws_url(), token=bob["token"])
        await ws_until_ready(fast)
        await ws_until_ready(other)
        slow = raw_socket_that_never_reads(server, alice["token"])
        try:
            ids = [await events.apublish(alice["id"], "test.big", {"n": n, "pad": payload}) for n in range(300)]
            bob_id = await events.apublish(bob["id"], "test.n", {"n": 0})
            bob_frame = await ws_frame(other)
            received = [(await ws_frame(fast))["id"] for _ in ids]
        finally:
            slow.close()
        await fast.close()
        await other.close()
        return ids, bob_id, bob_frame, received

    ids, bob_id, bob_frame, received = run(scenario)
    assert bob_frame["id"] == bob_id
    assert received == ids


def test_pokes_resume_after_the_channel_layer_restarts(alice, tmp_path):
    """The pub/sub Redis goes away under an open socket and comes back: nothing is lost.

    Heartbeats are slow here (60 s), so the event written during the outage can only arrive
    through the layer once it is back (the next poke's chain link shows the gap).
    """
    url = f"redis://127.0.0.1:{free_port()}/0"
    layer_redis = localredis.start(url, tmp_path / "layer")
    server = start_server(CHANNEL_REDIS_URL=url, MOOKTI_WS_HEARTBEAT="60")
    try:

        async def scenario():
            ws = await ws_connect(server.ws_url(), token=alice["token"])
            await ws_until_ready(ws)
            chat_id = await new_chat(server, alice)
            before = await ws_frame(ws)
            localredis.stop(layer_redis)
            during = await post_message(server, alice, chat_id, "while pub/sub is down")
            restarted = localredis.start(url, tmp_path / "layer")
            after = []
            try:
                deadline = asyncio.get_running_loop().time() + 30
                while len(after) < 2 and asyncio.get_running_loop().time() < deadline:
                    # keep writing until the layer's connections are back and a poke gets through
                    await post_message(server, alice, chat_id, "after the restart")
                    try:
                        while True:
                            after.append(await ws_frame(ws, timeout=1))
                    except TimeoutError:
                        pass
            finally:
                localredis.stop(restarted)
            await ws.close()
            return chat_id, before, during, after

        chat_id, before, during, after = run(scenario)
    finally:
        server.stop()
        localredis.stop(layer_redis)
    assert before["data"]["id"] == chat_id
    assert after[0]["data"] == during  # first the event from the outage, then the newer ones
    ids = [events.parse_id(f["id"]) for f in after]
    assert ids == sorted(set(ids))
