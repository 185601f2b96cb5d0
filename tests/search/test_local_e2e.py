"""The embedded defaults end to end: messages through the API, the local model, LanceDB, search by meaning."""

from __future__ import annotations

import pytest

from storage.search.embeddings import get_embeddings
from storage.search.embeddings.local import SentenceTransformerEmbeddings
from storage.search.vectors import get_vector_store
from storage.search.vectors.lancedb import LanceDBVectorStore
from tests.search.conftest import new_chat, search_api

CORPUS = {
    "Kitchen": [
        "What's the best way to cook spaghetti so it doesn't get sticky?",
        "Use plenty of boiling salted water and stir during the first two minutes.",
    ],
    "Trip planning": [
        "I want to go from Tokyo to Kyoto next spring, is the bullet train worth it?",
        "The Shinkansen takes a little over two hours and a JR pass can save money.",
    ],
    "Fitness": [
        "How should I train for my first marathon?",
        "Build your weekly mileage slowly and include one long run every week.",
    ],
    "Money": [
        "Should I put my savings into an index fund or keep them in a bank account?",
        "Index funds return more over decades but their value goes up and down.",
    ],
    "Garden": [
        "The leaves on my tomato plants are turning yellow, what is wrong?",
        "Yellow lower leaves usually mean a lack of nitrogen or too much watering.",
    ],
    "Code help": [
        "My Python script crashes with a KeyError when reading a dictionary.",
        "Use dict.get with a default value, or check whether the key is present first.",
    ],
}
PARAPHRASES = [
    ("my noodles clump together when I boil them", "Kitchen"),
    ("high-speed rail between Japanese cities", "Trip planning"),
    ("getting ready to run 42 kilometres", "Fitness"),
    ("where should I invest money for retirement", "Money"),
    ("vegetable plant foliage losing its green colour", "Garden"),
    ("exception when looking up a missing entry in a mapping", "Code help"),
]


@pytest.fixture
def corpus(local, make_user, make_indexer):
    user = make_user(name="Learner", user_type="pro")
    chats = {title: new_chat(user, title, texts) for title, texts in CORPUS.items()}
    indexer = make_indexer()
    assert indexer.drain()
    return {"user": user, "chats": chats, "indexer": indexer}


def test_local_model_and_lancedb_are_used(corpus, local):
    assert isinstance(get_embeddings(), SentenceTransformerEmbeddings)
    assert get_embeddings().model_id == "sentence-transformers/all-MiniLM-L6-v2@384"
    store = get_vector_store()
    assert isinstance(store, LanceDBVectorStore) and store.path == local["path"]
    assert store.stats()["total"] == 12 and store.stats()["dimension"] == 384


@pytest.mark.parametrize(("query", "title"), PARAPHRASES)
def test_paraphrased_queries_find_the_right_conversation(corpus, query, title):
    response = search_api(corpus["user"], query)
    assert response.status_code == 200, response.content
    groups = response.json()["results"]
    assert groups and groups[0]["title"] == title, [(g["title"], g["score"]) for g in groups]
    assert groups[0]["chatId"] == corpus["chats"][title]["id"]


def test_changes_reach_search_through_the_indexer(corpus):
    user, chats, indexer = corpus["user"], corpus["chats"], corpus["indexer"]
    user["api"].delete(f"/api/storage/chat/{chats['Garden']['id']}")
    new_chat(user, "Astronomy", ["Why does Saturn have rings made of ice?"])
    doc = (
        user["api"]
        .post(
            "/api/storage/document",
            {"title": "Trip notes", "kind": "text", "content": "Remember to book the ryokan in Kyoto and pack light."},
        )
        .json()
    )
    assert indexer.drain()
    groups = search_api(user, "vegetable plant foliage losing its green colour").json()["results"]
    assert "Garden" not in [g["title"] for g in groups]
    assert search_api(user, "planets with rings of ice").json()["results"][0]["title"] == "Astronomy"
    found = search_api(user, "japanese inn reservation", kinds=["document"]).json()["results"]
    assert found[0]["documentId"] == doc["id"]
