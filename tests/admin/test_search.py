"""Semantic search, reindex, the indexer panel and dead letters, on the real default backends
(the local MiniLM model and LanceDB in a temporary folder), with the indexer drained in-process."""

from __future__ import annotations

import html

import pytest
from django.test import Client
from django.urls import reverse

from mookti import keys as mookti_keys
from mookti.redis import get_redis
from storage.managers import chats, documents, messages, users
from storage.search import keys as search_keys
from storage.search import staff as search_staff
from storage.search.vectors import get_vector_store, user_namespace
from storage.staff import keys as staff_keys
from tests.admin.conftest import drain_indexer


def indexed_ids(user_id: str) -> list[str]:
    return get_vector_store().list_ids(user_namespace(user_id), "")


@pytest.fixture
def library(search_backends, make_user):
    """A learner with two chats on different subjects and a document, indexed."""
    user = make_user(name="Sam Searcher", user_type="pro")
    plants = chats.create(user["id"], title="Plants")
    history = chats.create(user["id"], title="History")
    saved = messages.save(
        user["id"],
        [
            {"chatId": plants["id"], "role": "user", "parts": [{"type": "text", "text": "What is photosynthesis?"}]},
            {
                "chatId": plants["id"],
                "role": "assistant",
                "parts": [
                    {"type": "text", "text": "Photosynthesis turns sunlight, water and CO2 into sugar in leaves."}
                ],
            },
            {
                "chatId": history["id"],
                "role": "assistant",
                "parts": [
                    {"type": "text", "text": "The French Revolution began in 1789 with the storming of the Bastille."}
                ],
            },
        ],
    )
    document = documents.save(
        user["id"], document_id=None, title="Algebra notes", kind="text", content="Solve 2x + 3 = 7 for x."
    )
    assert drain_indexer()
    return {**user, "plants": plants, "history": history, "messages": saved, "document": document}


def search(staff_client: Client, **params):
    return staff_client.get(reverse("admin:mookti_search"), params)


def test_search_finds_the_message_and_links_to_it(staff_client: Client, library) -> None:
    response = search(staff_client, q="how do leaves make sugar from light", user=library["email"])
    assert response.status_code == 200
    hits = response.context["hits"]
    best = hits[0]
    assert (best["kind"], best["chatId"], best["messageId"]) == (
        "message",
        library["plants"]["id"],
        library["messages"][1]["id"],
    )
    assert best["title"] == "Plants"
    assert "sunlight" in best["snippet"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    body = html.unescape(response.content.decode())
    assert best["url"] in body
    assert "SentenceTransformerEmbeddings" in body and "lancedb:" in body
    followed = staff_client.get(best["url"])
    assert followed.status_code == 200
    assert followed.context["focus"] == library["messages"][1]["id"]


def test_search_by_kind_and_across_users(staff_client: Client, library) -> None:
    only_documents = search(staff_client, q="equation for x", user=library["id"], kind="document")
    assert {h["kind"] for h in only_documents.context["hits"]} == {"document"}
    assert only_documents.context["hits"][0]["url"] == reverse(
        "admin:mookti_document", args=[library["document"]["id"]]
    )
    everyone = search(staff_client, q="the storming of the Bastille")
    best = everyone.context["hits"][0]
    assert (best["userId"], best["chatId"]) == (library["id"], library["history"]["id"])
    assert best["userLabel"] == library["email"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "x", "kind": "video"}, "kind"),
        ({"q": "x", "user": "nobody@example.com"}, "no user with the email"),
        ({"q": "x", "user": "bad{id}"}, "not a valid user id"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x" * 501}, "at most 500"),
    ],
)
def test_search_bad_input(staff_client: Client, params: dict, message: str) -> None:
    response = search(staff_client, **params)
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())


def test_reindex_user_rebuilds_their_vectors(staff_client: Client, search_backends, make_user) -> None:
    user = make_user()
    chat = chats.create(user["id"], title="Reindex me")
    saved = messages.save(
        user["id"], [{"chatId": chat["id"], "role": "user", "parts": [{"type": "text", "text": "Mitochondria"}]}]
    )
    get_redis().delete(mookti_keys.outbox())  # as if the indexer had lost these entries
    assert indexed_ids(user["id"]) == []
    url = reverse("admin:mookti_user_reindex", args=[user["id"]])
    page = staff_client.get(url)
    assert dict(page.context["facts"])["Messages and documents to embed"] == 1
    response = staff_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    assert indexed_ids(user["id"]) == [f"msg:{chat['id']}#{saved[0]['id']}"]
    _, entry = get_redis().xrevrange(staff_keys.admin_audit(), count=1)[0]
    assert (entry["staff"], entry["action"]) == ("support", "user.reindex")


def test_deleting_a_user_removes_their_vectors(staff_client: Client, library) -> None:
    assert len(indexed_ids(library["id"])) == 4
    staff_client.post(reverse("admin:mookti_user_delete", args=[library["id"]]), {"confirm": "yes"})
    assert users.get(library["id"]) is None
    assert drain_indexer()
    assert indexed_ids(library["id"]) == []


def test_operations_page_shows_the_indexer_and_retries_dead_letters(staff_client: Client, library) -> None:
    letter = {"op": "upsert", "kind": "message", "userId": library["id"], "chatId": library["plants"]["id"]}
    get_redis().xadd(
        search_keys.outbox_dead(),
        {**letter, "messageId": library["messages"][0]["id"], "error": "boom", "attempts": "5"},
    )
    page = staff_client.get(reverse("admin:mookti_operations"))
    panels = {panel["name"]: panel["context"] for panel in page.context["panels"]}
    indexer = panels["indexer"]
    assert dict(indexer["rows"])["Dead letters"] == 1
    assert "boom" in indexer["dead_entries"][0]["summary"]
    assert dict(panels["vectors"]["rows"])["Vectors"] >= 4
    assert reverse("admin:mookti_retry_dead") in page.content.decode()

    confirm = staff_client.get(reverse("admin:mookti_retry_dead"))
    assert confirm.status_code == 200
    assert get_redis().xlen(search_keys.outbox_dead()) == 1
    response = staff_client.post(reverse("admin:mookti_retry_dead"), {"confirm": "yes"})
    assert response.status_code == 302
    assert get_redis().xlen(search_keys.outbox_dead()) == 0
    _, requeued = get_redis().xrevrange(mookti_keys.outbox(), count=1)[0]
    assert letter.items() <= requeued.items() and "error" not in requeued
    _, entry = get_redis().xrevrange(staff_keys.admin_audit(), count=1)[0]
    assert (entry["action"], entry["detail"]) == ("indexer.retry_dead_letters", "1 put back on the outbox")
    assert drain_indexer()


def test_backends_name_the_configured_vector_store(search_backends) -> None:
    described = search_staff.backends()
    assert described["vector_store"].startswith("lancedb:")
    assert str(search_backends) in described["vector_store"]
