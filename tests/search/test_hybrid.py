"""Hybrid retrieval and better units of meaning, end to end through the API.

LanceDB on disk with the local model: exact rare terms, long answers (chunked and folded back),
typos, the chat title in the embedded text (re-embedded when it changes). Pinecone through the
real SDK against the fake server: sparse-dense records and queries. A kind registered by a test
(as a new app would) is indexed from the outbox and searched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from mookti import outbox
from mookti.backends import registry
from mookti.redis import Write, get_redis
from storage.search import keys as search_keys
from storage.search import kinds
from storage.search.kinds import Changes, IndexableKind, Subject, Visible
from storage.search.vectors import get_vector_store, user_namespace
from tests.search.conftest import new_chat, search_api

FILLER = (
    "The teacher then walks through a second worked example, restating each definition carefully, "
    "checking the vocabulary, and asking the learner to summarise what changed between the two cases. "
)
LONG_ANSWER = FILLER * 14 + "Finally, remember that the Treaty of Tordesillas split the newly found lands in 1494."


@pytest.fixture
def biology(local, make_user, make_indexer) -> dict[str, Any]:
    user = make_user(name="Learner", user_type="pro")
    chats = {
        "Photosynthesis": new_chat(
            user,
            "Photosynthesis",
            ["How do plants turn light into sugar?", "The enzyme RuBisCO fixes carbon dioxide in the Calvin cycle."],
        ),
        "Plant growth": new_chat(
            user,
            "Plant growth",
            [
                "Why do plants need sunlight to grow?",
                "Light gives plants energy to make their food from air and water.",
            ],
        ),
        "Cell division": new_chat(
            user, "Cell division", ["What happens during mitosis?", "Mitosis splits one cell into two identical cells."]
        ),
        "History lesson": new_chat(user, "History lesson", ["Tell me about Spain and Portugal exploring the world."]),
    }
    answer = user["api"].post(
        "/api/storage/message",
        {
            "chatId": chats["History lesson"]["id"],
            "role": "assistant",
            "parts": [{"type": "text", "text": LONG_ANSWER}],
        },
    )
    assert answer.status_code == 201, answer.content
    indexer = make_indexer()
    assert indexer.drain()
    return {"user": user, "chats": chats, "indexer": indexer, "answer": answer.json()[0]}


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [group["title"] for group in response.json()["results"]]


def test_a_rare_exact_term_ranks_its_conversation_first(biology):
    assert titles(search_api(biology["user"], "RuBisCO"))[0] == "Photosynthesis"


def test_paraphrases_keep_their_order(biology):
    assert titles(search_api(biology["user"], "one cell becoming two copies"))[0] == "Cell division"


def test_a_misspelled_term_still_finds_its_conversation(biology):
    assert titles(search_api(biology["user"], "mitosys"))[0] == "Cell division"


def test_a_long_answer_is_chunked_and_its_tail_is_found_as_one_hit(biology):
    chat_id, message_id = biology["chats"]["History lesson"]["id"], biology["answer"]["id"]
    ids = get_vector_store().list_ids(user_namespace(biology["user"]["id"]), f"msg:{chat_id}#{message_id}")
    assert len(ids) >= 3 and f"msg:{chat_id}#{message_id}:1" in ids  # chunks with overlap
    response = search_api(biology["user"], "Tordesillas treaty dividing new lands")
    group = response.json()["results"][0]
    assert group["title"] == "History lesson"
    answer_hits = [hit for hit in group["hits"] if hit["messageId"] == message_id]
    assert len(answer_hits) == 1 and answer_hits[0]["chunk"] == len(ids) - 1  # the last chunk, folded


def test_editing_a_long_answer_short_removes_its_extra_chunks(biology):
    chat_id, message_id = biology["chats"]["History lesson"]["id"], biology["answer"]["id"]
    response = biology["user"]["api"].patch(
        f"/api/storage/message/{message_id}", {"parts": [{"type": "text", "text": "Short now."}]}
    )
    assert response.status_code == 200, response.content
    assert biology["indexer"].drain()
    ids = get_vector_store().list_ids(user_namespace(biology["user"]["id"]), f"msg:{chat_id}#{message_id}")
    assert ids == [f"msg:{chat_id}#{message_id}"]


def test_the_title_is_embedded_and_a_new_title_re_embeds_the_chat(biology):
    user, chat = biology["user"], biology["chats"]["Cell division"]
    namespace = user_namespace(user["id"])
    response = user["api"].patch(f"/api/storage/chat/{chat['id']}", {"title": "Karyokinesis revision"})
    assert response.status_code == 200, response.content
    assert biology["indexer"].drain()
    store = get_vector_store()
    rows = store.db.open_table(namespace).search().where(f"chat_id = '{chat['id']}'").to_list()
    assert rows and all(row["title"] == "Karyokinesis revision" for row in rows)
    assert all(row["text"].startswith("Karyokinesis revision\n\n") for row in rows)
    assert titles(search_api(user, "karyokinesis"))[0] == "Karyokinesis revision"


# --- Pinecone: sparse-dense --------------------------------------------------------------------
def test_pinecone_records_and_queries_carry_sparse_values(remote, make_user, make_indexer):
    user = make_user(name="Learner", user_type="pro")
    chat = new_chat(user, "Biology", ["The enzyme RuBisCO fixes carbon", "Plants need light"])
    other = new_chat(user, "Enzymes", ["enzymes speed up reactions in cells"])
    assert make_indexer().drain()
    stored = remote["pinecone"].sparse[user_namespace(user["id"])]
    assert {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]} <= set(stored)
    assert all(len(v["indices"]) == len(v["values"]) > 0 for v in stored.values())
    assert titles(search_api(user, "RuBisCO"))[0] == "Biology"
    query = next(body for method, path, body in reversed(remote["pinecone"].requests) if path == "/query")
    assert query["sparseVector"]["indices"] and max(query["sparseVector"]["values"]) <= 0.15 + 1e-9
    assert other["id"] != chat["id"]


def test_a_dense_only_pinecone_index_gets_no_sparse_values(remote, settings, make_user, make_indexer):
    settings.MOOKTI_VECTOR_STORE = {
        **settings.MOOKTI_VECTOR_STORE,
        "OPTIONS": {**settings.MOOKTI_VECTOR_STORE["OPTIONS"], "hybrid": False},
    }
    user = make_user(name="Learner", user_type="pro")
    new_chat(user, "Biology", ["The enzyme RuBisCO fixes carbon"])
    assert make_indexer().drain()
    assert not remote["pinecone"].sparse.get(user_namespace(user["id"]))
    assert get_vector_store().describe().endswith("#dense")
    assert titles(search_api(user, "RuBisCO")) == ["Biology"]


# --- a kind registered by another app ----------------------------------------------------------
CARDS: dict[str, dict[str, str]] = {}


class FlashcardKind(IndexableKind):
    """What a flashcards app would register from its own folder."""

    name = "flashcard"
    group = "flashcard"
    subjects = ("flashcard",)
    items = ("flashcard",)
    default = False

    def subjects_of_entry(self, fields: dict[str, str]) -> list[Subject] | None:
        return [Subject("flashcard", fields["cardId"])] if fields.get("kind") == "flashcard" else None

    def plan(self, user_id: str, subjects: Sequence[Subject], changes: Changes) -> None:
        for subject in subjects:
            card = CARDS.get(subject.parent)
            if card is None or card["userId"] != user_id:
                changes.deletes.add(f"card:{subject.parent}#0")
                continue
            metadata = {"userId": user_id, "kind": "flashcard", "documentId": subject.parent, "snippet": card["back"]}
            changes.upserts[f"card:{subject.parent}#0"] = (f"{card['front']}\n\n{card['back']}", metadata)

    def visible(self, user_id: str, matches: Sequence[Any]) -> dict[str, Visible]:
        found = {m.id: m.metadata["documentId"] for m in matches}
        return {i: Visible(card, CARDS[card]["front"]) for i, card in found.items() if card in CARDS}


@pytest.fixture
def flashcards() -> Iterator[None]:
    kinds.register(FlashcardKind())
    yield
    CARDS.clear()
    kinds._kinds.pop("flashcard", None)


def test_a_registered_kind_is_indexed_from_the_outbox_and_searched(local, flashcards, make_user, make_indexer):
    user = make_user(name="Learner", user_type="pro")
    new_chat(user, "Capitals", ["What is the capital of Australia?"])
    CARDS["card1"] = {"userId": user["id"], "front": "Capital of Australia", "back": "Canberra, not Sydney"}
    write = Write()
    outbox.stage(write, "upsert", kind="flashcard", userId=user["id"], cardId="card1")
    write.execute()
    assert make_indexer().drain()
    response = search_api(user, "Canberra", kinds=["flashcard"])
    groups = response.json()["results"]
    assert [(g["type"], g["id"], g["title"]) for g in groups] == [("flashcard", "card1", "Capital of Australia")]
    assert search_api(user, "Canberra", kinds=["quiz"]).status_code == 400
    assert all(g["type"] == "chat" for g in search_api(user, "Canberra").json()["results"])  # not a default kind


# --- a multilingual model through the OpenAI-compatible backend --------------------------------
def test_a_multilingual_model_behind_an_openai_compatible_server(remote, settings, make_user, make_indexer):
    """The documented configuration (MOOKTI_EMBEDDINGS=openai, OPENAI_BASE_URL, OPENAI_EMBEDDING_MODEL)
    reaches the server, the model is recorded with the index, and other-language queries find English chats."""
    settings.MOOKTI_EMBEDDINGS = "openai"
    env = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": f"{remote['openai'].url}/v1",
        "OPENAI_EMBEDDING_MODEL": "fake-multilingual-e5",
        "OPENAI_EMBEDDING_DIMENSIONS": "64",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        registry.reset()
        user = make_user(name="Learner", user_type="pro")
        new_chat(user, "Biology", ["How does a cell division work?"])
        new_chat(user, "Finance", ["Should I buy stocks or bonds on the market?"])
        assert make_indexer().drain()
        assert get_redis().hget(search_keys.vector_index_meta(), "model") == "openai/fake-multilingual-e5@64"
        assert titles(search_api(user, "la division de la cellule"))[0] == "Biology"
        assert titles(search_api(user, "acciones y bonos"))[0] == "Finance"
        assert titles(search_api(user, "Aktien oder Anleihen"))[0] == "Finance"
    registry.reset()
