"""``POST /api/storage/search`` over Pinecone + OpenAI (real SDKs, fake servers): results, filters, errors."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from storage.search.vectors import VectorRecord, get_vector_store
from tests.conftest import snapshot_keys
from tests.search.conftest import new_chat, search_api
from tests.search.fakes import bag_of_words_vector


@pytest.fixture
def alice_with_data(remote, make_user, make_indexer):
    alice = make_user(name="Alice", user_type="pro")
    cooking = new_chat(alice, "Cooking", ["how long to boil pasta in salted water", "pasta water should taste salty"])
    answer = (
        alice["api"]
        .post(
            "/api/storage/message",
            {
                "chatId": cooking["id"],
                "role": "assistant",
                "parts": [{"type": "text", "text": "boil pasta for nine minutes"}],
            },
        )
        .json()[0]
    )
    travel = new_chat(alice, "Travel", ["cheapest train from paris to berlin"])
    doc = (
        alice["api"]
        .post(
            "/api/storage/document",
            {"title": "Pasta recipe", "kind": "text", "content": "Boil the pasta, add tomato sauce."},
        )
        .json()
    )
    assert make_indexer().drain()
    return {"user": alice, "cooking": cooking, "answer": answer, "travel": travel, "doc": doc}


def test_results_are_grouped_by_conversation_and_document(alice_with_data):
    data = alice_with_data
    response = search_api(data["user"], "boil pasta water")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["query"] == "boil pasta water"
    groups = body["results"]
    assert [g["type"] for g in groups[:2]] == ["chat", "document"] or [g["type"] for g in groups[:2]] == [
        "document",
        "chat",
    ]
    chat_group = next(g for g in groups if g["type"] == "chat")
    assert chat_group["id"] == chat_group["chatId"] == data["cooking"]["id"] and chat_group["title"] == "Cooking"
    assert len(chat_group["hits"]) == 3 and chat_group["score"] == chat_group["hits"][0]["score"]
    assert [h["score"] for h in chat_group["hits"]] == sorted((h["score"] for h in chat_group["hits"]), reverse=True)
    hit = chat_group["hits"][0]
    assert set(hit) == {"id", "messageId", "chunk", "role", "snippet", "score", "createdAt"}
    assert hit["id"] == f"msg:{data['cooking']['id']}#{hit['messageId']}" and hit["createdAt"].endswith("Z")
    assert chat_group["snippet"] == hit["snippet"] and chat_group["createdAt"] == hit["createdAt"]
    doc_group = next(g for g in groups if g["type"] == "document")
    assert doc_group["documentId"] == data["doc"]["id"] and doc_group["title"] == "Pasta recipe"
    assert doc_group["hits"][0]["chunk"] == 0 and doc_group["chatId"] is None
    assert groups == sorted(groups, key=lambda g: g["score"], reverse=True)


def test_titles_come_from_redis_at_query_time(alice_with_data):
    data = alice_with_data
    data["user"]["api"].patch(f"/api/storage/chat/{data['cooking']['id']}", {"title": "Italian food"})
    groups = search_api(data["user"], "boil pasta water", kinds=["message"]).json()["results"]
    assert groups[0]["title"] == "Italian food"


def test_filters_by_kind_chat_role_and_time(alice_with_data):
    data = alice_with_data
    user = data["user"]
    only_docs = search_api(user, "pasta", kinds=["document"]).json()["results"]
    assert [g["type"] for g in only_docs] == ["document"]
    only_travel = search_api(user, "pasta train", chatId=data["travel"]["id"]).json()["results"]
    assert [g["chatId"] for g in only_travel] == [data["travel"]["id"]]
    assistant = search_api(user, "boil pasta", role="assistant").json()["results"]
    assert [h["messageId"] for g in assistant for h in g["hits"]] == [data["answer"]["id"]]
    answer_time = data["answer"]["createdAt"]
    since_answer = search_api(user, "boil pasta", kinds=["message"], **{"from": answer_time}).json()["results"]
    assert {h["messageId"] for g in since_answer for h in g["hits"]} <= {data["answer"]["id"]} | {
        m["id"] for m in data["travel"]["messages"]
    }
    assert data["answer"]["id"] in {h["messageId"] for g in since_answer for h in g["hits"]}
    before_all = search_api(user, "boil pasta", to="2001-01-01T00:00:00Z").json()["results"]
    assert before_all == []
    top_one = search_api(user, "boil pasta", topK=1).json()["results"]
    assert sum(len(g["hits"]) for g in top_one) == 1


def test_learning_content_only_when_asked(alice_with_data, settings):
    settings.MOOKTI_SEARCH = {**settings.MOOKTI_SEARCH, "LEARNING_NAMESPACES": ["learning-core"]}
    text = "how to boil pasta perfectly: a lesson"
    get_vector_store().upsert(
        "learning-core",
        [
            VectorRecord(
                "lesson-7#0", bag_of_words_vector(text, 64), {"kind": "learning", "title": "Lesson 7", "text": text}
            )
        ],
    )
    user = alice_with_data["user"]
    without = search_api(user, "boil pasta").json()["results"]
    assert "learning" not in {g["type"] for g in without}
    with_learning = search_api(user, "boil pasta", includeLearning=True).json()["results"]
    lesson = next(g for g in with_learning if g["type"] == "learning")
    assert lesson["title"] == "Lesson 7" and lesson["namespace"] == "learning-core" and lesson["snippet"] == text
    only = search_api(user, "boil pasta", kinds=["learning"]).json()["results"]
    assert [g["type"] for g in only] == ["learning"]
    scoped = search_api(user, "boil pasta", kinds=["learning"], chatId=alice_with_data["cooking"]["id"]).json()
    assert scoped["results"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 2001}, "query"),
        ({"query": 42}, "query"),
        ({"query": "x", "kinds": ["nope"]}, "kinds"),
        ({"query": "x", "kinds": []}, "kinds"),
        ({"query": "x", "kinds": "message"}, "kinds"),
        ({"query": "x", "chatId": "bad id{}"}, "chatId"),
        ({"query": "x", "role": "robot"}, "role"),
        ({"query": "x", "from": "yesterday"}, "from"),
        ({"query": "x", "from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "from"),
        ({"query": "x", "topK": 0}, "topK"),
        ({"query": "x", "topK": 101}, "topK"),
        ({"query": "x", "topK": "ten"}, "topK"),
        ({"query": "x", "filter": {"chatId": "a"}}, "filter"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(remote, make_user, body, field):
    user = make_user()
    before = snapshot_keys()
    response = user["api"].post("/api/storage/search", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert snapshot_keys() == before


def test_search_needs_a_user(remote, anon):
    assert anon.post("/api/storage/search", {"query": "x"}).status_code in (401, 403)


def test_outages_are_a_503_with_a_clear_message(alice_with_data, remote):
    user = alice_with_data["user"]
    remote["openai"].stop()
    response = search_api(user, "a query never embedded before")
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("Search is unavailable right now: The embedding service")
    remote["openai"].start()
    remote["pinecone"].stop()
    response = search_api(user, "another fresh query")
    assert response.status_code == 503 and "Pinecone is unavailable" in response.json()["error"]["message"]
    remote["pinecone"].start()
    assert search_api(user, "another fresh query").status_code == 200


def test_query_embeddings_are_cached(alice_with_data, remote):
    user = alice_with_data["user"]
    remote["openai"].reset()
    first = search_api(user, "cheap trains to berlin").json()
    second = search_api(user, "cheap trains to berlin").json()
    assert first == second and first["results"][0]["chatId"] == alice_with_data["travel"]["id"]
    assert len(remote["openai"].inputs_seen) == 1  # the second search did not call the embedding API


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` in Helvetica (hand-built: objects, xref table, trailer)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_uploaded_pdf_becomes_searchable(remote, make_user, make_indexer):
    user = make_user()
    upload = SimpleUploadedFile("volcanoes.pdf", tiny_pdf("Volcanoes erupt when magma rises"), "application/pdf")
    response = user["api"].post("/api/storage/document", {"title": "Geology", "file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert make_indexer().drain()
    groups = search_api(user, "magma volcanoes erupt").json()["results"]
    assert groups[0]["documentId"] == response.json()["id"]
    assert groups[0]["snippet"] == "Volcanoes erupt when magma rises"
    broken = SimpleUploadedFile("broken.pdf", b"%PDF-1.4 garbage", "application/pdf")
    response = user["api"].post("/api/storage/document", {"title": "Broken", "file": broken}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]
