"""A message's stored value (``chat:{cid}:message-data`` field): every field shape round-trips,
the Lua twin of the format (updates in place) agrees with Python, and a short message costs little."""

from __future__ import annotations

import uuid

import pytest

from mookti.redis import get_redis, register_script
from storage import keys
from storage.entities import Message, MessageLookup, compact_id, expand_id, text_of
from storage.entities.records import MESSAGE_LUA

LONG = "the numerator over the denominator " * 30
SHAPES = {
    "short text": [{"type": "text", "text": "a short question"}],
    "long text": [{"type": "text", "text": LONG}],
    "empty text": [{"type": "text", "text": ""}],
    "no parts": [],
    "several parts": [{"type": "text", "text": "two"}, {"type": "reasoning", "text": "parts ✓"}],
    "long parts": [{"type": "text", "text": LONG}, {"type": "reasoning", "text": "why"}],
    "text part with more keys": [{"type": "text", "text": "x", "state": "done"}],
    "text that looks like a header": [{"type": "text", "text": "ut1.2,3:{}"}],
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("role", ["user", "assistant", "system"])
@pytest.mark.parametrize(
    ("attachments", "content"),
    [
        ([], None),
        ([{"url": "https://x.test/é.png", "name": "ünï", "contentType": "image/png"}], None),
        ([], "its own summary, ünïcode"),
        ([{"url": "u"}], "both: \x01 :,. 😀"),
    ],
)
def test_every_field_shape_round_trips(shape, role, attachments, content):
    parts = SHAPES[shape]
    message = Message("m-1", "c-1", role, parts, attachments, content or text_of(parts), 1_760_000_000_123_456)
    value = message.value()
    assert Message.from_value("c-1", "m-1", value) == message
    assert Message.stored("c-1", "m-1", value) == message.to_dict()


@pytest.mark.parametrize("created", [0, 1, -5, 2**53])
def test_any_time_round_trips(created):
    message = Message("m", "c", "user", [{"type": "text", "text": "t"}], [], "t", created)
    assert Message.from_value("c", "m", message.value()).createdAt == created


def test_a_short_message_costs_its_text_and_a_few_bytes():
    text = "x" * 60
    value = Message("m", "c", "user", [{"type": "text", "text": text}], [], text, 1_760_000_000_123_456).value()
    assert value.endswith(":" + text) and len(value) - len(text) <= 13
    long = Message("m", "c", "assistant", SHAPES["long text"], [], LONG, 1).value()
    assert long[1] == "T" and len(long) < len(LONG) / 2


def test_a_value_that_is_not_a_message_is_refused():
    for value in ("", "hello", "xt1:a", "uq1:a", "ut:a"):
        with pytest.raises(ValueError):
            Message.from_value("c", "m", value)


# parse_message and build_message, run on the server: what an update in place does to a value
SPLICE = register_script(
    MESSAGE_LUA
    + """
local head, attachments, content, body = parse_message(ARGV[1])
return {head, attachments, content, body, build_message(head, attachments, content, body)}
"""
)


@pytest.mark.parametrize("shape", ["short text", "several parts", "text that looks like a header"])
@pytest.mark.parametrize(("attachments", "content"), [([], ""), ([{"name": "é"}], ""), ([], "ü"), ([{"a": 1}], "😀")])
def test_the_lua_twin_reads_and_builds_the_same_value(shape, attachments, content):
    parts = SHAPES[shape]
    message = Message("m", "c", "user", parts, attachments, content or text_of(parts), 42)
    value = message.value()
    head, got_attachments, got_content, body, rebuilt = SPLICE(keys=[], args=[value])
    kind, expected_body = Message.parts_section(parts)
    assert head == "u" + kind + "16" and body == expected_body
    assert got_attachments == Message.attachments_section(attachments) and got_content == content
    assert rebuilt == value == Message.compose(head, got_attachments, got_content, body)


def test_ids_are_compact_in_lookups():
    chat_id, owner_id, message_id = (str(uuid.uuid4()) for _ in range(3))
    assert len(compact_id(message_id)) == 20 and expand_id(compact_id(message_id)) == message_id
    for other in ("msg-1", "A" * 20, message_id.upper(), "abcdefghij0123456789"):
        assert compact_id(other) == "." + other and expand_id(compact_id(other)) == other
    assert len(MessageLookup(chat_id, owner_id).encode()) == 40
    assert MessageLookup.decode(MessageLookup("c-1", owner_id).encode()) == MessageLookup("c-1", owner_id)


def test_a_page_is_one_hash_of_the_chat(alice):
    api = alice["api"]
    chat = api.post("/api/storage/chat", {}).json()
    saved = api.post(
        "/api/storage/message",
        {"messages": [{"chatId": chat["id"], "role": "user", "content": str(n)} for n in range(3)]},
    ).json()
    stored = get_redis().hgetall(keys.chat_message_data(chat["id"]))
    assert sorted(stored) == sorted(m["id"] for m in saved)
    assert [Message.stored(chat["id"], m["id"], stored[m["id"]])["content"] for m in saved] == ["0", "1", "2"]
    assert api.get("/api/storage/message", {"chatId": chat["id"]}).json()["messages"] == saved
