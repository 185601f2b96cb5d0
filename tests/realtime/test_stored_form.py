"""The event stream's stored form: compact entries, the generic JSON form, and entries written
before the compact form, all read back as the exact frame JSON clients got from the poke."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from gamification.managers import engine
from mookti import events, keys
from mookti.redis import get_redis
from storage.managers import chats, messages

NOW = 1_796_194_436_469_123  # microseconds; rendered with millisecond precision
CHAT, MESSAGE, OTHER, USER = (str(uuid.uuid4()) for _ in range(4))
STREAK = {
    "current": 3,
    "longest": 9,
    "freezes": 1,
    "maxFreezes": 2,
    "lastActivity": "2026-12-02T06:53:56.482Z",
    "lastActivityDate": "2026-12-02",
    "today": "2026-12-02",
    "timezone": "America/New_York",
    "alive": True,
    "activeToday": True,
    "freezesNeeded": 0,
}
GOAL = {
    "id": str(uuid.uuid4()),
    "userId": USER,
    "title": "Fractions",
    "description": "",
    "progress": 40,
    "current": 4,
    "target": 10,
    "dueDate": None,
    "status": "active",
    "createdAt": "2026-12-02T06:53:56.482Z",
    "updatedAt": "2026-12-02T06:53:56.482Z",
    "completedAt": None,
}
# Every event type the code publishes, with data as its publisher passes it (before render()).
EMITTED: list[tuple[str, dict[str, Any]]] = [
    (
        "chat.created",
        {
            "id": CHAT,
            "userId": USER,
            "title": "Brüche ½ 🍕",
            "visibility": "private",
            "createdAt": NOW,
            "lastMessageAt": None,
        },
    ),
    ("chat.updated", {"id": CHAT, "title": "x", "visibility": "public", "createdAt": NOW, "lastMessageAt": NOW + 5}),
    ("chat.deleted", {"id": CHAT}),
    ("chat.deleted_all", {"deletedCount": 3}),
    ("message.created", {"id": MESSAGE, "chatId": CHAT, "role": "user"}),
    ("message.created", {"id": MESSAGE, "chatId": CHAT, "role": "assistant"}),
    ("message.created", {"id": MESSAGE, "chatId": CHAT, "role": "system"}),
    ("message.updated", {"id": MESSAGE, "chatId": CHAT, "changed": ["content", "parts"]}),
    ("message.deleted", {"chatId": CHAT, "ids": [MESSAGE, OTHER], "after": NOW}),
    ("message.deleted", {"chatId": CHAT, "ids": [], "after": None}),
    ("stream.started", {"id": OTHER, "chatId": CHAT, "createdAt": NOW}),
    ("stream.ended", {"id": OTHER, "chatId": CHAT, "status": "done", "position": 412}),
    ("vote.updated", {"chatId": CHAT, "messageId": MESSAGE, "isUpvoted": False}),
    ("document.saved", {"id": OTHER, "title": "Notes", "kind": "text", "createdAt": NOW}),
    ("document.versions_deleted", {"id": OTHER, "after": NOW}),
    ("suggestion.created", {"documentId": OTHER, "ids": [MESSAGE]}),
    ("user.updated", {"userId": USER, "changed": ["name", "timezone"]}),
    ("streak.updated", STREAK),
    ("streak.updated", {**STREAK, "current": 0, "lastActivity": None, "lastActivityDate": None, "alive": False}),
    ("stats.updated", {"messages": 4, "minutes": 0, "xp": 20, "itemsCompleted": 0, "goalsCompleted": 0}),
    ("xp.awarded", {"amount": 12, "total": 12, "week": "2026-W49", "weekXp": 12}),
    ("xp.awarded", {"amount": 2, "total": 2_000_123, "week": "2027-W01", "weekXp": 70_000}),
    (
        "achievement.awarded",
        {
            "id": "first_message",
            "title": "First words",
            "description": "Sent it.",
            "xp": 10,
            "awardedAt": "2026-12-02T06:53:56.486Z",
        },
    ),
    ("goal.created", GOAL),
    ("goal.updated", GOAL),
    ("goal.completed", {**GOAL, "xpAwarded": 25}),
    ("goal.deleted", {"id": GOAL["id"]}),
    ("progress.updated", {"itemId": "lesson-3", "status": "completed", "newItems": 1}),
    (
        "streak.restored",
        {"current": 5, "lastActivity": "2026-12-01T10:00:00.000Z", "restoredBy": "staff", "reason": "outage"},
    ),
]
COMPACT = {"message.created", "xp.awarded", "message.updated", "message.deleted", "chat.created", "chat.updated",
           "chat.deleted", "stream.started", "stream.ended", "vote.updated", "streak.updated",
           "achievement.awarded", "document.saved", "user.updated"}  # fmt: skip


def wire(data: dict[str, Any]) -> str:
    """The frame ``data`` JSON exactly as the poke sends it."""
    return json.dumps(events.render(data), separators=(",", ":"), ensure_ascii=False)


def raw_entries(user_id: str) -> list[tuple[str, dict[bytes, bytes]]]:
    return [(i.decode(), fields) for i, fields in get_redis(raw=True).xrange(keys.events(user_id))]


def replayed(user_id: str, after: str = events.ZERO_ID) -> list[tuple[str, str]]:
    replay = asyncio.run(events.replay(user_id, after))
    assert replay.complete
    return replay.frames


def test_every_emitted_type_reads_back_as_the_frame_the_poke_sent(alice):
    ids = [events.publish(alice["id"], event_type, data) for event_type, data in EMITTED]
    frames = dict(replayed(alice["id"]))
    for event_id, (event_type, data), (_, fields) in zip(ids, EMITTED, raw_entries(alice["id"]), strict=True):
        assert frames[event_id] == events.frame_text(event_id, event_type, wire(data)), event_type
        compact = fields[b"type"].isdigit()
        assert compact == (event_type in COMPACT), (event_type, fields)
    assert [(t, d) for _, t, d in events.read(alice["id"])] == [(t, wire(d)) for t, d in EMITTED]


def test_compact_entries_are_small(alice):
    """Two 16-byte ids and a role; four small integers (the week as one)."""
    events.publish(alice["id"], "message.created", {"id": MESSAGE, "chatId": CHAT, "role": "assistant"})
    events.publish(alice["id"], "xp.awarded", {"amount": 12, "total": 12, "week": "2026-W49", "weekXp": 12})
    (_, created), (_, xp) = raw_entries(alice["id"])
    assert created == {b"type": b"1", b"data": uuid.UUID(MESSAGE).bytes + uuid.UUID(CHAT).bytes + b"\x01"}
    assert xp[b"type"] == b"2" and len(xp[b"data"]) == 8


def test_a_learners_messages_leave_only_compact_entries(make_user):
    """The events a chat and its messages cause match their codecs (a changed shape would silently
    fall back to the generic form, several times larger: give it a new code)."""
    learner = make_user(user_type="basic")
    chat = chats.create(learner["id"], title="Fractions")
    for n in range(4):
        role = "user" if n % 2 == 0 else "assistant"
        messages.save(learner["id"], [{"chatId": chat["id"], "role": role, "parts": [{"type": "text", "text": "hi"}]}])
    engine.flush_background()
    found = raw_entries(learner["id"])
    assert {"message.created", "xp.awarded", "streak.updated"} <= {t for _, t, _ in events.read(learner["id"])}
    assert all(fields[b"type"].isdigit() for _, fields in found), found


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("test.new-type", {"n": 1, "nested": {"a": [1, 2.5, None, True]}}),  # no codec: works as is
        ("message.created", {"id": "m1", "chatId": CHAT, "role": "user"}),  # not a UUID
        ("message.created", {"id": MESSAGE.upper(), "chatId": CHAT, "role": "user"}),  # not canonical
        ("message.created", {"id": None, "chatId": CHAT, "role": "user"}),
        ("message.created", {"id": MESSAGE, "chatId": CHAT, "role": "tool"}),  # not a known choice
        ("message.created", {"chatId": CHAT, "id": MESSAGE, "role": "user"}),  # another field order
        ("message.created", {"id": MESSAGE, "chatId": CHAT}),  # a field missing
        ("message.created", {"id": MESSAGE, "chatId": CHAT, "role": "user", "createdAt": NOW}),  # one more
        ("xp.awarded", {"amount": 2**70, "total": 12, "week": "2026-W49", "weekXp": 12}),  # beyond msgpack
        ("xp.awarded", {"amount": 1.5, "total": -3, "week": "2026-W49", "weekXp": 12}),  # kept as they are
        ("xp.awarded", {"amount": 12, "total": 12, "week": "2026-W7", "weekXp": 12}),  # not zero-padded
        ("xp.awarded", {"amount": 12, "total": 12, "week": "W49", "weekXp": 12}),
        ("xp.awarded", {"amount": "12", "total": True, "week": "2026-W49", "weekXp": None}),
        (
            "achievement.awarded",
            {"id": "a", "title": "t", "description": "d", "xp": 1, "awardedAt": "2026-12-02T06:53:56.486123Z"},
        ),
        ("achievement.awarded", {"id": "a", "title": "t", "description": "d", "xp": 1, "awardedAt": "yesterday"}),
        ("streak.updated", {**STREAK, "today": "2026-12-2"}),
        (
            "chat.created",
            {
                "id": CHAT,
                "userId": USER,
                "title": "t",
                "visibility": "unlisted",
                "createdAt": NOW,
                "lastMessageAt": None,
            },
        ),
        ("message.deleted", {"chatId": CHAT, "ids": [MESSAGE, "x"], "after": NOW}),
    ],
)
def test_values_a_codec_cannot_take_are_stored_generic_and_read_back_exactly(alice, event_type, data):
    event_id = events.publish(alice["id"], event_type, data)
    ((entry_id, fields),) = raw_entries(alice["id"])
    assert entry_id == event_id
    if fields[b"type"].isdigit():  # compact only when it decodes to the very same text
        assert events.decode(fields) == (event_type, wire(data))
    else:
        assert fields == {b"type": event_type.encode(), b"data": wire(data).encode()}
    assert replayed(alice["id"]) == [(event_id, events.frame_text(event_id, event_type, wire(data)))]


def test_entries_written_before_the_compact_form_still_replay(alice):
    """A deployment's streams hold JSON entries for up to MOOKTI_EVENTS_RETENTION after the upgrade."""
    old = json.dumps({"id": MESSAGE, "chatId": CHAT, "role": "user"}, separators=(",", ":"))
    old_id = get_redis().xadd(keys.events(alice["id"]), {"type": "message.created", "data": old})
    new_id = events.publish(alice["id"], "message.created", {"id": OTHER, "chatId": CHAT, "role": "assistant"})
    new = json.dumps({"id": OTHER, "chatId": CHAT, "role": "assistant"}, separators=(",", ":"))
    assert replayed(alice["id"]) == [
        (old_id, events.frame_text(old_id, "message.created", old)),
        (new_id, events.frame_text(new_id, "message.created", new)),
    ]
    assert replayed(alice["id"], old_id) == [(new_id, events.frame_text(new_id, "message.created", new))]
    assert [t for _, t, _ in events.read(alice["id"])] == ["message.created", "message.created"]


def test_a_code_from_a_newer_release_is_skipped(alice, caplog):
    before = events.publish(alice["id"], "chat.deleted", {"id": CHAT})
    get_redis().xadd(keys.events(alice["id"]), {"type": "999", "data": "?"})
    after = events.publish(alice["id"], "chat.deleted", {"id": CHAT})
    assert [frame_id for frame_id, _ in replayed(alice["id"])] == [before, after]
    assert "unknown code 999" in caplog.text
