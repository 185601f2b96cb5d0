"""The raw key browser and the operations page."""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import reverse

from mookti import events
from mookti import keys as mookti_keys
from mookti.redis import get_redis, key
from storage import keys
from storage.staff import keys as staff_keys


@pytest.fixture
def sample_keys() -> Iterator[dict[str, str]]:
    """One key of every type under this run's prefix, in a namespace of its own."""
    space = f"rawtest{uuid.uuid4().hex[:8]}"
    names = {kind: key(f"{space}:{kind}") for kind in ("string", "binary", "hash", "list", "set", "zset", "stream")}
    client = get_redis()
    client.set(names["string"], '{"hello": "world"}', ex=3600)
    get_redis(raw=True).set(names["binary"], b"\x80\x04\x95pickled\xff")
    client.hset(names["hash"], mapping={"field": "value", "json": '{"a": 1}'})
    client.rpush(names["list"], *[f"item{i}" for i in range(150)])
    client.sadd(names["set"], "alpha", "beta")
    client.zadd(names["zset"], {f"member{i}": i for i in range(120)})
    client.xadd(names["stream"], {"op": "upsert", "kind": "message"})
    yield {"space": space, **names}
    # The binary value would break later tests' key snapshots (they read values as text).
    client.delete(*names.values())


def view(staff_client: Client, name: str, **params):
    return staff_client.get(reverse("admin:mookti_key"), {"key": name, **params})


def test_scan_lists_keys_with_type_ttl_and_memory(staff_client: Client, sample_keys) -> None:
    response = staff_client.get(reverse("admin:mookti_keys"), {"pattern": f"{sample_keys['space']}:*"})
    rows = {row["short"].split(":")[-1]: row for row in response.context["rows"]}
    assert set(rows) == {"string", "binary", "hash", "list", "set", "zset", "stream"}
    assert rows["hash"]["type"] == "hash"
    assert rows["string"]["ttl"] in ("59m 59s", "1h 0m")  # EX 3600
    assert rows["list"]["ttl"] == "no expiry"
    assert rows["list"]["memory"] > 0
    only_zsets = staff_client.get(
        reverse("admin:mookti_keys"), {"pattern": f"{sample_keys['space']}:*", "type": "zset"}
    )
    assert [row["short"].split(":")[-1] for row in only_zsets.context["rows"]] == ["zset"]


def test_scan_follows_its_cursor_to_the_end(staff_client: Client) -> None:
    space = f"many{uuid.uuid4().hex[:8]}"
    client = get_redis()
    client.mset({key(f"{space}:{i}"): "x" for i in range(250)})
    seen: set[str] = set()
    params = {"pattern": f"{space}:*"}
    for _ in range(50):
        response = staff_client.get(reverse("admin:mookti_keys"), params)
        seen |= {row["short"] for row in response.context["rows"]}
        if not response.context["next_url"]:
            break
        params = {"pattern": f"{space}:*", "cursor": response.context["next_url"].rsplit("cursor=", 1)[1]}
    assert len(seen) == 250


def test_scan_stays_inside_the_deployment_prefix(staff_client: Client, settings) -> None:
    outsider = f"not-mookti-{uuid.uuid4().hex}"
    get_redis().set(outsider, "x", ex=60)
    try:
        response = staff_client.get(reverse("admin:mookti_keys"), {"pattern": "*"})
        assert outsider not in {row["name"] for row in response.context["rows"]}
        assert all(row["name"].startswith(settings.MOOKTI_REDIS_PREFIX) for row in response.context["rows"])
        refused = view(staff_client, outsider)
        assert refused.status_code == 400
        assert "only keys of this deployment" in refused.content.decode()
    finally:
        get_redis().delete(outsider)


@pytest.mark.parametrize(
    ("params", "status"),
    [({"cursor": "abc"}, 400), ({"cursor": "-1"}, 400), ({"type": "json"}, 400), ({"pattern": "x" * 300}, 400)],
)
def test_scan_bad_input(staff_client: Client, params: dict, status: int) -> None:
    assert staff_client.get(reverse("admin:mookti_keys"), params).status_code == status


def test_value_viewer_for_every_type(staff_client: Client, sample_keys) -> None:
    string = view(staff_client, sample_keys["string"])
    assert string.context["value"]["string"]["json"] is True
    assert '"hello": "world"' in html.unescape(string.content.decode())
    binary = view(staff_client, sample_keys["binary"])
    assert binary.status_code == 200
    assert binary.context["value"]["string"]["binary"] is True
    hash_page = view(staff_client, sample_keys["hash"])
    assert dict((k, v["text"]) for k, v in hash_page.context["value"]["pairs"])["field"] == "value"
    listing = view(staff_client, sample_keys["list"])
    assert [v["text"] for _, v in listing.context["value"]["members"]][:2] == ["item0", "item1"]
    assert listing.context["next_url"]
    page_two = view(staff_client, sample_keys["list"], offset=100)
    assert page_two.context["value"]["members"][0][1]["text"] == "item100"
    assert sorted(v["text"] for _, v in view(staff_client, sample_keys["set"]).context["value"]["members"]) == [
        "alpha",
        "beta",
    ]
    zset = view(staff_client, sample_keys["zset"])
    assert zset.context["value"]["length"] == 120
    assert zset.context["value"]["scored"][0][1]["text"] == "member0"
    stream = view(staff_client, sample_keys["stream"])
    assert stream.context["value"]["entries"][0][1][0][0] == "op"


def test_value_viewer_shows_a_users_events_decoded(staff_client: Client, learner) -> None:
    """The event stream stores events packed; the viewer shows the type and JSON clients receive."""
    entries = view(staff_client, mookti_keys.events(learner["id"])).context["value"]["entries"]
    shown = [{k: v["text"] for k, v in fields} for _, fields in reversed(entries)]
    stored = events.read(learner["id"])
    assert [(e["type"], json.loads(e["data"])) for e in shown] == [(t, json.loads(d)) for _, t, d in stored]
    assert "message.created" in {e["type"] for e in shown}


def test_value_viewer_missing_key_and_entity_link(staff_client: Client, learner, settings) -> None:
    missing = view(staff_client, settings.MOOKTI_REDIS_PREFIX + "no-such-key")
    assert missing.status_code == 404
    user_key = view(staff_client, keys.user(learner["id"]))
    assert user_key.context["entity_url"] == reverse("admin:mookti_user", args=[learner["id"]])
    assert "password" in user_key.content.decode()  # the raw view shows the hash as stored


def test_key_deletion_is_off_by_default(staff_client: Client, sample_keys) -> None:
    url = reverse("admin:mookti_key_delete")
    assert staff_client.get(url, {"key": sample_keys["hash"]}).status_code == 403
    assert staff_client.post(url, {"key": sample_keys["hash"], "confirm": "yes"}).status_code == 403
    assert get_redis().exists(sample_keys["hash"])
    assert "delete-key-link" not in view(staff_client, sample_keys["hash"]).content.decode()


def test_key_deletion_when_enabled(staff_client: Client, sample_keys, settings) -> None:
    settings.MOOKTI_ADMIN_ALLOW_KEY_DELETE = True
    url = reverse("admin:mookti_key_delete")
    assert "delete-key-link" in view(staff_client, sample_keys["hash"]).content.decode()
    confirm = staff_client.get(url, {"key": sample_keys["hash"]})
    assert confirm.status_code == 200
    assert get_redis().exists(sample_keys["hash"])
    response = staff_client.post(url, {"key": sample_keys["hash"], "confirm": "yes"})
    assert response.status_code == 302
    assert not get_redis().exists(sample_keys["hash"])
    _, entry = get_redis().xrevrange(staff_keys.admin_audit(), count=1)[0]
    assert (entry["staff"], entry["action"], entry["target"]) == ("support", "key.delete", sample_keys["hash"])
    outside = staff_client.post(url, {"key": "someone-else:key", "confirm": "yes"})
    assert outside.status_code == 400


def test_operations_page_reports_redis_and_the_keyspace(staff_client: Client, learner) -> None:
    response = staff_client.get(reverse("admin:mookti_operations"))
    assert response.status_code == 200
    sections = dict(response.context["sections"])
    assert {"Memory", "Clients", "Throughput", "Persistence"} <= set(sections)
    assert dict(sections["Throughput"])["Ops/s"] != "—"
    namespaces = {row["namespace"]: row for row in response.context["analysis"]["rows"]}
    assert namespaces["user:{*}"]["type"] == "hash"
    assert namespaces["chat:{*}:message-data"]["type"] == "hash"  # a chat's messages, one key
    counts = dict(response.context["counts"])
    assert counts["Users"] >= 1
    small = staff_client.get(reverse("admin:mookti_operations"), {"scan_limit": "100"})
    assert small.context["analysis"]["scanned"] <= 100
    assert staff_client.get(reverse("admin:mookti_operations"), {"scan_limit": "lots"}).status_code == 400


@pytest.mark.parametrize(
    "stored",
    [
        "pbkdf2_sha256$1000000$somesalt$c2VjcmV0aGFzaHBhcnRvZnRoZXBhc3N3b3Jk",
        "bcrypt$$2b$10$abcdefghijklmnopqrstuuSECRETSECRETSECRETSECRETSECRE",
        "$2a$10$abcdefghijklmnopqrstuuSECRETSECRETSECRETSECRETSECRE",
    ],
)
def test_raw_viewer_masks_password_hashes(staff_client: Client, make_user, stored: str) -> None:
    """Issue 12, defect 8: a user hash's password (and any stored password hash) is masked."""
    from storage.managers import users

    user = users.create(f"{uuid.uuid4().hex[:10]}@example.com", password_hash=stored)
    response = view(staff_client, keys.user(user["id"]))
    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    secret = stored.rsplit("$", 1)[1]
    assert secret not in page and stored not in page
    assert "(secret hidden)" in page
    assert user["email"] in page  # other fields are shown as stored
    users.delete(user["id"])
