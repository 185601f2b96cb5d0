"""Embedding and vector-store backends through the real SDKs (fake servers) and LanceDB on disk."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mookti.backends import BackendRejected, BackendUnavailable
from storage.search.chunking import chunk_text
from storage.search.embeddings import get_embeddings
from storage.search.embeddings.openai import OpenAIEmbeddings
from storage.search.vectors import VectorRecord, chat_prefix, document_prefix, get_vector_store
from storage.search.vectors import filters as f
from storage.search.vectors.lancedb import LanceDBVectorStore, to_sql
from storage.search.vectors.pinecone import PineconeVectorStore, to_pinecone
from tests.search.conftest import DIMENSION, openai_settings, pinecone_settings
from tests.search.fakes import bag_of_words_vector

rng = np.random.default_rng(7)


def unit(vector: np.ndarray) -> list[float]:
    return (vector / np.linalg.norm(vector)).astype("float32").tolist()


# --- filters ------------------------------------------------------------------------------------
def test_filter_is_checked_once_and_translated_by_each_backend():
    node = f.parse(
        {"$and": [{"chatId": {"$in": ["c1", "c'2"]}}, {"createdAt": {"$gte": 10, "$lte": 20}}], "role": "user"}
    )
    assert to_pinecone(node) == {
        "$and": [
            {
                "$and": [
                    {"chatId": {"$in": ["c1", "c'2"]}},
                    {"$and": [{"createdAt": {"$gte": 10.0}}, {"createdAt": {"$lte": 20.0}}]},
                ]
            },
            {"role": {"$eq": "user"}},
        ]
    }
    sql = to_sql(node, {"chatId": "chat_id", "createdAt": "created_at", "role": "role"})
    assert sql == "((chat_id IN ('c1', 'c''2') AND (created_at >= 10.0 AND created_at <= 20.0)) AND role = 'user')"


@pytest.mark.parametrize(
    "spec",
    [
        {"colour": "red"},
        {"chatId": {"$regex": "x"}},
        {"createdAt": {"$gte": "yesterday"}},
        {"chatId": {"$gt": "a"}},
        {"chatId": {"$in": []}},
        {"$and": []},
        {"$not": {"chatId": "a"}},
        {"createdAt": {"$lte": float("inf")}},
        [],
    ],
)
def test_bad_filters_are_rejected(spec):
    with pytest.raises(f.FilterError):
        f.parse(spec)


def test_chunks_overlap_and_cover_the_text():
    text = " ".join(f"Sentence {i} is about subject {i % 5}." for i in range(300))
    chunks = chunk_text(text, size=400, overlap=80)
    assert all(0 < len(c) <= 400 for c in chunks)
    assert chunks[0].startswith("Sentence 0 ") and chunks[-1].endswith("Sentence 299 is about subject 4.")
    for before, after in itertools.pairwise(chunks):
        assert after[:20] in before  # the next chunk starts inside the previous one
    assert chunk_text("") == [] and chunk_text("  short  ") == ["short"]


# --- OpenAI embeddings through the SDK ---------------------------------------------------------
@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_openai_embeddings_float_and_base64(fake_openai, encoding):
    fake_openai.reset()
    embeddings = OpenAIEmbeddings(
        api_key="sk-test",
        base_url=f"{fake_openai.url}/v1",
        dimensions=DIMENSION,
        encoding_format=encoding,
        max_retries=0,
    )
    texts = ["the cat sat on the mat", "quantum chromodynamics", "the cat sat on the mat"]
    vectors = embeddings.embed(texts)
    assert embeddings.dimension == DIMENSION and embeddings.model_id == f"openai/text-embedding-3-small@{DIMENSION}"
    expected = [bag_of_words_vector(t, DIMENSION) for t in texts]
    assert np.allclose(vectors, expected, atol=1e-6)  # order restored from "index", base64 decoded
    body = [b for m, p, b in fake_openai.requests if p == "/v1/embeddings"][-1]
    assert body["encoding_format"] == (encoding or "base64")  # the SDK asks for base64 when left to it
    assert body["dimensions"] == DIMENSION


def test_openai_batches_within_limits_and_never_rejects_long_texts(fake_openai):
    fake_openai.reset()
    embeddings = OpenAIEmbeddings(
        api_key="sk-test",
        base_url=f"{fake_openai.url}/v1",
        dimensions=DIMENSION,
        max_retries=0,
        max_request_tokens=20_000,
    )
    texts = ["word " * 20_000] + [f"text number {i}" for i in range(2100)] + ["x" * 9000]
    vectors = embeddings.embed(texts)
    assert len(vectors) == len(texts) and all(len(v) == DIMENSION for v in vectors)
    sent = fake_openai.inputs_seen
    assert len(sent) >= 2 and all(len(batch) <= 2048 for batch in sent)
    assert all(sum(len(t.encode()) for t in batch) <= 20_000 for batch in sent)
    assert max(len(t.encode()) for batch in sent for t in batch) <= 8191  # truncated, not rejected
    assert sum(len(batch) for batch in sent) == len(texts)


def test_openai_errors_become_backend_errors(fake_openai):
    fake_openai.reset()
    embeddings = OpenAIEmbeddings(
        api_key="sk-test", base_url=f"{fake_openai.url}/v1", dimensions=DIMENSION, max_retries=0
    )
    with pytest.raises(BackendRejected, match="content filter"):
        embeddings.embed(["this is POISON"])
    fake_openai.fail_next(500)
    with pytest.raises(BackendUnavailable, match="500"):
        embeddings.embed(["hello"])
    fake_openai.stop()
    try:
        with pytest.raises(BackendUnavailable, match="unreachable"):
            embeddings.embed(["hello"])
    finally:
        fake_openai.start()


def test_openai_429_is_retried_by_the_sdk(fake_openai):
    fake_openai.reset()
    embeddings = OpenAIEmbeddings(
        api_key="sk-test", base_url=f"{fake_openai.url}/v1", dimensions=DIMENSION, max_retries=2
    )
    fake_openai.fail_next(429, times=2, headers={"retry-after-ms": "10"})
    assert len(embeddings.embed(["retried"])[0]) == DIMENSION
    assert len([r for r in fake_openai.requests if r[1] == "/v1/embeddings"]) == 3


def test_backends_come_from_settings(settings, fake_openai, fake_pinecone):
    settings.MOOKTI_EMBEDDINGS = openai_settings(fake_openai)
    settings.MOOKTI_VECTOR_STORE = pinecone_settings(fake_pinecone)
    assert isinstance(get_embeddings(), OpenAIEmbeddings) and get_embeddings() is get_embeddings()
    assert isinstance(get_vector_store(), PineconeVectorStore)
    settings.MOOKTI_VECTOR_STORE = {"BACKEND": "storage.search.vectors.lancedb.LanceDBVectorStore", "OPTIONS": {}}
    assert isinstance(get_vector_store(), LanceDBVectorStore)  # a settings change rebuilds it


# --- the same store contract on Pinecone (SDK + fake) and LanceDB ------------------------------
@pytest.fixture(params=["pinecone", "lancedb"])
def store(request, tmp_path, fake_pinecone):
    if request.param == "pinecone":
        if not fake_pinecone.running:
            fake_pinecone.start()
        fake_pinecone.reset()
        options = pinecone_settings(fake_pinecone)["OPTIONS"]
        return PineconeVectorStore(**options)
    return LanceDBVectorStore(path=str(tmp_path / "lance"))


def records_for(chat: str, count: int, created: float = 1000.0, role: str = "user") -> list[VectorRecord]:
    return [
        VectorRecord(
            f"msg:{chat}#m{i}",
            unit(rng.normal(size=DIMENSION)),
            {
                "userId": "u1",
                "chatId": chat,
                "messageId": f"m{i}",
                "role": role,
                "kind": "message",
                "createdAt": created + i,
                "title": f"Chat {chat}",
                "snippet": f"text {i}",
            },
        )
        for i in range(count)
    ]


def test_store_contract(store):
    ns = "user-u1"
    a, b = records_for("a", 30), records_for("b", 12, created=5000.0, role="assistant")
    docs = [
        VectorRecord(
            f"doc:d1#{n}",
            unit(rng.normal(size=DIMENSION)),
            {
                "userId": "u1",
                "documentId": "d1",
                "chunk": n,
                "kind": "document",
                "createdAt": 9000.0,
                "title": "Doc",
                "snippet": "chunk",
            },
        )
        for n in range(3)
    ]
    store.upsert(ns, a + b + docs)
    store.upsert("user-u2", records_for("a", 2))
    target = a[7]
    best = store.query(ns, target.values, top_k=3)
    assert best[0].id == target.id and best[0].score == pytest.approx(1.0, abs=1e-4)
    assert best[0].metadata["chatId"] == "a" and best[0].metadata["createdAt"] == pytest.approx(1007.0)
    assert best[0].metadata["title"] == "Chat a" and best[0].metadata["role"] == "user"

    only_b = store.query(ns, target.values, top_k=50, filter=f.parse({"chatId": {"$eq": "b"}}))
    assert {m.id for m in only_b} == {r.id for r in b}
    in_range = store.query(
        ns,
        target.values,
        top_k=50,
        filter=f.parse({"$and": [{"kind": {"$in": ["message"]}}, {"createdAt": {"$gte": 1010, "$lte": 1019.5}}]}),
    )
    assert {m.id for m in in_range} == {f"msg:a#m{i}" for i in range(10, 20)}
    docs_only = store.query(ns, target.values, top_k=50, filter=f.parse({"kind": "document"}))
    assert {m.id for m in docs_only} == {d.id for d in docs} and docs_only[0].metadata["chunk"] == docs_only[
        0
    ].metadata["chunk"]
    assistants = store.query(ns, target.values, top_k=50, filter=f.parse({"role": {"$ne": "user"}, "kind": "message"}))
    assert {m.id for m in assistants} == {r.id for r in b}

    assert sorted(store.list_ids(ns, "msg:b#")) == sorted(r.id for r in b)
    store.upsert(ns, [VectorRecord(a[0].id, a[0].values, {**a[0].metadata, "title": "Renamed"})])  # upsert = replace
    assert store.query(ns, a[0].values, top_k=1)[0].metadata["title"] == "Renamed"
    store.delete(ns, [a[1].id, a[2].id, "msg:a#missing"])
    assert len(store.list_ids(ns, "msg:a#")) == 28
    store.delete_prefix(ns, chat_prefix("b"))
    store.delete_prefix(ns, document_prefix("d1"))
    assert store.list_ids(ns, "msg:b#") == [] and store.list_ids(ns, "doc:") == []
    stats = store.stats()
    assert stats["dimension"] == DIMENSION and stats["namespaces"]["user-u2"] == 2
    assert stats["namespaces"][ns] == 28
    assert store.query("user-u2", target.values, top_k=10, filter=f.parse({"chatId": "b"})) == []
    store.delete_namespace(ns)
    store.delete_namespace("never-written")
    assert store.query(ns, target.values, top_k=5) == [] and ns not in store.stats()["namespaces"]


def test_pinecone_upserts_are_split_by_count_and_size(fake_pinecone):
    fake_pinecone.reset()
    store = PineconeVectorStore(**{**pinecone_settings(fake_pinecone)["OPTIONS"], "max_records": 100})
    big = [
        VectorRecord(f"doc:big#{i}", unit(rng.normal(size=DIMENSION)), {"kind": "document", "snippet": "y" * 30_000})
        for i in range(150)
    ]
    store.upsert("user-size", big + records_for("s", 250))
    assert len(fake_pinecone.vectors("user-size")) == 400
    assert all(n <= 100 and size <= 2 * 1024 * 1024 for n, size in fake_pinecone.upsert_requests)
    assert min(n for n, _ in fake_pinecone.upsert_requests) < 100  # the 30 KB records were split by size


def test_pinecone_429_and_5xx_are_retried_with_backoff(fake_pinecone, pinecone_retry_waits):
    fake_pinecone.reset()
    store = PineconeVectorStore(**pinecone_settings(fake_pinecone)["OPTIONS"])
    fake_pinecone.fail_next(429, headers={"Retry-After": "2"}, path="/vectors/upsert")
    fake_pinecone.fail_next(503, path="/vectors/upsert")
    store.upsert("user-r", records_for("r", 3))
    assert len(fake_pinecone.vectors("user-r")) == 3
    assert [p for _, p, _ in fake_pinecone.requests].count("/vectors/upsert") == 3
    assert len(pinecone_retry_waits) == 2
    assert 2.0 <= pinecone_retry_waits[0] <= 3.0  # Retry-After honoured (plus up to 50% jitter)
    assert 0.25 <= pinecone_retry_waits[1] <= 60  # then exponential-ish backoff with jitter
    fake_pinecone.fail_next(500, times=5, path="/query")
    with pytest.raises(BackendUnavailable):  # the SDK gave up after its retries
        store.query("user-r", records_for("r", 1)[0].values)
    assert [p for _, p, _ in fake_pinecone.requests].count("/query") == 4
    fake_pinecone.failures.clear()
    with pytest.raises(BackendRejected):  # a 400 is a data problem, not an outage
        store.upsert("user-r", [VectorRecord("msg:x#y", [0.1] * (DIMENSION + 1), {})])


def test_lancedb_builds_and_refreshes_an_ann_index(tmp_path):
    store = LanceDBVectorStore(path=str(tmp_path / "ann"), ann_min_rows=400, partition_rows=200, id_index_min_rows=100)
    ns = "user-big"
    centers = rng.normal(size=(20, DIMENSION))
    vectors = [unit(centers[i % 20] + rng.normal(scale=0.3, size=DIMENSION)) for i in range(900)]
    records = [
        VectorRecord(f"msg:c{i % 30}#m{i}", v, {"chatId": f"c{i % 30}", "kind": "message", "createdAt": float(i)})
        for i, v in enumerate(vectors)
    ]
    store.upsert(ns, records[:500])
    table = store._table(ns)
    assert store._partitions(table) == 0
    store.maintain([ns])
    assert store._partitions(table) == 2  # 500 rows / 200 per partition
    store.upsert(ns, records[500:])
    store.maintain([ns])
    assert store._partitions(table) == 4  # grew past twice the trained size: rebuilt with more partitions
    names = {index.name for index in table.list_indices()}
    assert names == {"id_idx", "text_idx", "vector_p4"}  # and the full-text index of the embedded text
    hits = 0
    matrix = np.asarray(vectors)
    for probe in range(0, 900, 45):
        exact = set(np.argsort(-(matrix @ matrix[probe]))[:10])
        got = {int(m.id.split("#m")[1]) for m in store.query(ns, vectors[probe], top_k=10)}
        hits += len(got & exact)
    assert hits / (20 * 10) >= 0.9  # recall@10 through the ANN index
    filtered = store.query(ns, vectors[3], top_k=50, filter=f.parse({"chatId": "c3"}))
    assert {m.id for m in filtered} == {r.id for r in records if r.metadata["chatId"] == "c3"}
