"""The /ws/events/ consumer in-process (WebsocketCommunicator) with the real Redis pub/sub layer."""

from __future__ import annotations

import asyncio
import threading

from asgiref.sync import sync_to_async

from mookti import events, keys
from mookti.redis import get_redis
from storage import keys as storage_keys
from storage.managers import tokens, users
from storage.realtime import keys as realtime_keys
from tests.conftest import Api
from tests.realtime.conftest import communicator, next_frame, run, until_ready


def ticket_for(user: dict) -> str:
    response = user["api"].post("/api/realtime/ticket/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert 0 < body["expiresIn"] <= 60
    return body["ticket"]


def publish_many(user_id: str, count: int, start: int = 0) -> list[str]:
    return [events.publish(user_id, "test.n", {"n": n}) for n in range(start, start + count)]


def lose_poke(user_id: str, n: int) -> str:
    """An event that reached the stream but whose poke was lost (as after a pub/sub hiccup)."""
    return get_redis().xadd(keys.events(user_id), {"type": "test.n", "data": f'{{"n":{n}}}'})


# --- authentication ------------------------------------------------------------------------------
def test_ticket_connects_once(alice):
    ticket = ticket_for(alice)

    async def scenario():
        first = await communicator(ticket=ticket)
        ready = await next_frame(first)
        again = await communicator(ticket=ticket)
        refused = await next_frame(again)
        await first.disconnect()
        return ready, refused

    ready, refused = run(scenario)
    assert ready == {"type": "ready", "lastEventId": "0-0"}
    assert refused == {"closed": 4401}
    ttl = get_redis().ttl(realtime_keys.ws_ticket("anything"))
    assert ttl == -2  # tickets are stored under their digest only


def test_ticket_key_expires_within_a_minute(alice):
    ticket_for(alice)
    ticket_keys = list(get_redis().scan_iter(match=realtime_keys.ws_ticket("*"), count=1000))
    assert ticket_keys
    assert all(0 < get_redis().ttl(key) <= 60 for key in ticket_keys)


def test_bearer_subprotocol(alice):
    async def scenario():
        comm = await communicator(token=alice["token"])
        subprotocol = comm.accepted_subprotocol
        frame = await next_frame(comm)
        await comm.disconnect()
        return subprotocol, frame

    subprotocol, frame = run(scenario)
    assert subprotocol == "mookti.bearer"  # the token itself is never echoed
    assert frame["type"] == "ready"


def test_refused_without_valid_credentials(alice, settings):
    async def refused(**credentials):
        comm = await communicator(**credentials)
        return await next_frame(comm)

    async def scenario():
        return [
            await refused(),
            await refused(ticket="wst_forged"),
            await refused(token="mkt_not-a-token"),
            await refused(token=alice["id"]),  # a bare user id is not a credential
            await refused(token=settings.MOOKTI_SERVICE_KEY),  # a socket belongs to one user
        ]

    assert run(scenario) == [{"closed": 4401}] * 5


def test_bad_last_event_id_is_a_bad_request(alice):
    async def scenario():
        comm = await communicator(token=alice["token"], last_event_id="yesterday")
        return await next_frame(comm)

    assert run(scenario) == {"closed": 4400}


def test_service_key_gets_a_ticket_for_a_user(alice, service, settings):
    acting = Api(settings.MOOKTI_SERVICE_KEY, act_as=alice["id"])
    ticket = acting.post("/api/realtime/ticket/").json()["ticket"]
    assert service.post("/api/realtime/ticket/").status_code in (401, 403)  # the service key alone is nobody

    async def scenario():
        comm = await communicator(ticket=ticket)
        await until_ready(comm)
        event_id = await events.apublish(alice["id"], "test.n", {"n": 1})
        frame = await next_frame(comm)
        await comm.disconnect()
        return event_id, frame

    event_id, frame = run(scenario)
    assert frame == {"id": event_id, "type": "test.n", "data": {"n": 1}}


def test_revoked_token_closes_the_socket(alice, settings):
    settings.MOOKTI_WS_HEARTBEAT = 0.2
    ticket = ticket_for(alice)

    async def scenario():
        by_token = await communicator(token=alice["token"])
        by_ticket = await communicator(ticket=ticket)
        await until_ready(by_token)
        await until_ready(by_ticket)
        await sync_to_async(tokens.revoke)(alice["token"])
        reused = await communicator(ticket=ticket)
        return await next_frame(by_token), await next_frame(by_ticket), await next_frame(reused)

    assert run(scenario) == ({"closed": 4401}, {"closed": 4401}, {"closed": 4401})


def test_revocation_closes_sockets_at_once_without_a_redis_recheck(alice, make_user, settings):
    """Heartbeats never reach the re-check here: the revocation poke closes the sockets."""
    settings.MOOKTI_WS_HEARTBEAT = 60
    second = tokens.issue(alice["id"])["token"]
    carol = make_user(name="Carol")
    service_ticket = Api(settings.MOOKTI_SERVICE_KEY, act_as=carol["id"]).post("/api/realtime/ticket/").json()

    async def scenario():
        revoked = await communicator(token=alice["token"])
        other_token = await communicator(token=second)
        by_service = await communicator(ticket=service_ticket["ticket"])
        for comm in (revoked, other_token, by_service):
            await until_ready(comm)
        await sync_to_async(tokens.revoke)(alice["token"])
        first_closed = await next_frame(revoked)
        other_open = await communicator_still_open(other_token)
        await sync_to_async(users.delete)(carol["id"])  # every socket of a deleted user closes
        return first_closed, other_open, await next_frame(by_service)

    assert run(scenario) == ({"closed": 4401}, True, {"closed": 4401})


async def communicator_still_open(comm) -> bool:
    """True if the socket still answers (a resume gets its ``ready``); disconnects it afterwards."""
    await comm.send_json_to({"type": "resume", "lastEventId": "0"})
    answered = await until_ready(comm) is not None
    await comm.disconnect()
    return answered


def test_lost_revocation_poke_is_caught_by_the_recheck(alice, settings):
    settings.MOOKTI_WS_HEARTBEAT = 0.2
    settings.MOOKTI_WS_RECHECK_BEATS = 2

    async def scenario():
        comm = await communicator(token=alice["token"])
        await until_ready(comm)
        # the token disappears without a poke (as if the revocation poke were lost)
        await sync_to_async(get_redis().delete)(storage_keys.token(tokens.digest(alice["token"])))
        return await next_frame(comm)

    assert run(scenario) == {"closed": 4401}


def test_socket_closes_when_its_token_expires(alice, settings):
    settings.MOOKTI_WS_HEARTBEAT = 60
    short = tokens.issue(alice["id"], ttl=1)["token"]
    ticket = Api(short).post("/api/realtime/ticket/").json()["ticket"]

    async def scenario():
        by_token = await communicator(token=short)
        by_ticket = await communicator(ticket=ticket)
        await until_ready(by_token)
        await until_ready(by_ticket)
        return await next_frame(by_token), await next_frame(by_ticket)

    assert run(scenario) == ({"closed": 4401}, {"closed": 4401})


# --- delivery ------------------------------------------------------------------------------------
def test_live_event_reaches_every_socket_of_the_owner_only(alice, bob):
    async def scenario():
        alice_tabs = [await communicator(token=alice["token"]) for _ in range(2)]
        bob_tab = await communicator(token=bob["token"])
        for comm in [*alice_tabs, bob_tab]:
            await until_ready(comm)
        chat = await sync_to_async(alice["api"].post)("/api/storage/chat", {"title": "Live"})
        bob_event = await events.apublish(bob["id"], "test.bob", {})
        frames = [await next_frame(comm) for comm in alice_tabs]
        bob_frame = await next_frame(bob_tab)  # alice's event never reaches bob: his first frame is his own
        for comm in [*alice_tabs, bob_tab]:
            await comm.disconnect()
        return chat.json(), frames, bob_event, bob_frame

    chat, frames, bob_event, bob_frame = run(scenario)
    for frame in frames:
        assert frame["type"] == "chat.created"
        assert frame["data"] == chat
    assert frames[0]["id"] == frames[1]["id"]
    assert bob_frame["id"] == bob_event


def test_reconnect_replays_exactly_what_was_missed(alice):
    async def scenario():
        comm = await communicator(token=alice["token"])
        await until_ready(comm)
        seen = await events.apublish(alice["id"], "test.n", {"n": -1})
        last = (await next_frame(comm))["id"]
        await comm.disconnect()
        missed = await sync_to_async(publish_many)(alice["id"], 20)
        comm = await communicator(token=alice["token"], last_event_id=last)
        replayed = await until_ready(comm)
        live_id = await events.apublish(alice["id"], "test.n", {"n": 20})
        live = await next_frame(comm)
        await comm.disconnect()
        return seen, last, missed, replayed, live_id, live

    seen, last, missed, replayed, live_id, live = run(scenario)
    assert last == seen
    assert [f["id"] for f in replayed] == missed
    assert [f["data"]["n"] for f in replayed] == list(range(20))
    assert live == {"id": live_id, "type": "test.n", "data": {"n": 20}}


def test_resume_message_replays_on_an_open_socket(alice):
    async def scenario():
        ids = await sync_to_async(publish_many)(alice["id"], 5)
        comm = await communicator(token=alice["token"])
        await until_ready(comm)
        await comm.send_json_to({"type": "resume", "lastEventId": ids[1]})
        replayed = await until_ready(comm)
        await comm.disconnect()
        return ids, replayed

    ids, replayed = run(scenario)
    assert [f["id"] for f in replayed] == ids[2:]


def test_no_gap_and_no_duplicate_between_replay_and_live(alice):
    """Events keep coming while the socket replays; each arrives exactly once, in order."""
    before = publish_many(alice["id"], 10)
    published: list[str] = []

    def keep_publishing() -> None:
        published.extend(publish_many(alice["id"], 60, start=10))

    async def scenario():
        writer = threading.Thread(target=keep_publishing)
        writer.start()
        comm = await communicator(token=alice["token"], last_event_id=before[4])
        frames = []
        while len(frames) < 65:
            frame = await next_frame(comm)
            if "id" in frame:
                frames.append(frame)
        await asyncio.to_thread(writer.join)
        extra = await comm.receive_nothing(0.3)
        await comm.disconnect()
        return frames, extra

    frames, nothing_more = run(scenario)
    assert [f["id"] for f in frames] == before[5:] + published
    assert nothing_more


def test_a_lost_poke_is_read_from_the_stream(alice):
    async def scenario():
        comm = await communicator(token=alice["token"])
        await until_ready(comm)
        lost = await sync_to_async(lose_poke)(alice["id"], 1)
        after = await events.apublish(alice["id"], "test.n", {"n": 2})
        frames = [await next_frame(comm), await next_frame(comm)]
        await comm.disconnect()
        return lost, after, frames

    lost, after, frames = run(scenario)
    assert [f["id"] for f in frames] == [lost, after]


def test_heartbeat_finds_a_trailing_lost_poke(alice, settings):
    settings.MOOKTI_WS_HEARTBEAT = 0.2
    settings.MOOKTI_WS_RECHECK_BEATS = 1  # the stream re-check (every 9th beat by default) on each beat

    async def scenario():
        comm = await communicator(token=alice["token"])
        await until_ready(comm)
        lost = await sync_to_async(lose_poke)(alice["id"], 1)
        outputs = [await comm.receive_json_from(5) for _ in range(2)]
        await comm.disconnect()
        return lost, outputs

    lost, outputs = run(scenario)
    assert {"type": "heartbeat"} in outputs
    assert [f.get("id") for f in outputs if "id" in f] == [lost]


def test_trimmed_history_gives_resync(alice, settings):
    settings.MOOKTI_EVENTS_MAXLEN = 10
    first = publish_many(alice["id"], 250)[0]

    async def scenario():
        comm = await communicator(token=alice["token"], last_event_id=first)
        frames = await until_ready(comm)
        newer = await events.apublish(alice["id"], "test.n", {"n": 250})
        live = await next_frame(comm)
        future = await communicator(token=alice["token"], last_event_id="99999999999999-0")
        from_the_future = await until_ready(future)
        await comm.disconnect()
        await future.disconnect()
        return frames, newer, live, from_the_future

    frames, newer, live, from_the_future = run(scenario)
    assert frames == [{"type": "resync"}]  # no partial replay: the client refetches over REST
    assert live["id"] == newer  # and stays live from the current head
    assert from_the_future == [{"type": "resync"}]


def test_a_client_that_saw_nothing_gets_the_whole_history(alice):
    ids = publish_many(alice["id"], 3)

    async def scenario():
        comm = await communicator(token=alice["token"], last_event_id="0")
        frames = await until_ready(comm)
        await comm.disconnect()
        return frames

    assert [f["id"] for f in run(scenario)] == ids


# --- public chats --------------------------------------------------------------------------------
def test_viewer_of_a_public_chat_gets_its_public_events_only(alice, bob):
    public = alice["api"].post("/api/storage/chat", {"title": "Open", "visibility": "public"}).json()
    private = alice["api"].post("/api/storage/chat", {"title": "Closed"}).json()

    async def scenario():
        viewer = await communicator(token=bob["token"])
        await until_ready(viewer)
        await viewer.send_json_to({"type": "subscribe", "chatId": private["id"]})
        denied = await next_frame(viewer)
        await viewer.send_json_to({"type": "subscribe", "chatId": public["id"]})
        subscribed = await next_frame(viewer)
        post = sync_to_async(alice["api"].post)
        message = (
            await post(
                "/api/storage/message",
                {"chatId": public["id"], "role": "assistant", "parts": [{"type": "text", "text": "hello"}]},
            )
        ).json()[0]
        created = await next_frame(viewer)
        await post("/api/storage/vote", {"chatId": public["id"], "messageId": message["id"], "type": "up"})
        await sync_to_async(alice["api"].patch)(f"/api/storage/chat/{public['id']}", {"visibility": "private"})
        went_private = await next_frame(viewer)  # the vote (owner-only data) was not sent before it
        await post(
            "/api/storage/message",
            {"chatId": public["id"], "role": "assistant", "parts": [{"type": "text", "text": "secret"}]},
        )
        bob_event = await events.apublish(bob["id"], "test.bob", {})
        after = await next_frame(viewer)
        await viewer.disconnect()
        return denied, subscribed, message, created, went_private, bob_event, after

    denied, subscribed, message, created, went_private, bob_event, after = run(scenario)
    assert denied["type"] == "error" and denied["code"] == "not_found:chat"
    assert subscribed == {"type": "subscribed", "chatId": public["id"]}
    assert created["type"] == "message.created"
    assert created["chatId"] == public["id"]
    assert created["data"] == {k: message[k] for k in ("id", "chatId", "role")}
    assert went_private["type"] == "chat.updated"
    assert went_private["data"]["visibility"] == "private"
    assert "userId" not in went_private["data"]
    assert after["id"] == bob_event  # nothing of the now private chat reached the viewer


def test_owner_subscribing_to_own_chat_gets_each_event_once(alice):
    chat = alice["api"].post("/api/storage/chat", {"title": "Mine", "visibility": "public"}).json()

    async def scenario():
        comm = await communicator(token=alice["token"])
        await until_ready(comm)
        await comm.send_json_to({"type": "subscribe", "chatId": chat["id"]})
        subscribed = await next_frame(comm)
        await sync_to_async(alice["api"].post)(
            "/api/storage/message",
            {"chatId": chat["id"], "role": "assistant", "parts": [{"type": "text", "text": "once"}]},
        )
        frame = await next_frame(comm)
        nothing_more = await comm.receive_nothing(0.3)
        await comm.disconnect()
        return subscribed, frame, nothing_more

    subscribed, frame, nothing_more = run(scenario)
    assert subscribed["type"] == "subscribed"
    assert frame["type"] == "message.created" and "chatId" not in frame
    assert nothing_more
