"""Search benchmark: indexer throughput with the local model, LanceDB query latency and recall.

    .venv/bin/python bench/search.py [--messages 1024] [--single 192] [--rounds 4] [--sizes 10000,100000]
                                     [--queries 200] [--parts throughput,latency]

1. **Indexer throughput** (all-MiniLM-L6-v2 on this machine's CPU), for two corpora of text from
   the Python standard library's docstrings: short chat messages (4-12 words) and longer ones
   (1-3 sentences). The same texts are embedded
   a) by the model alone in batches of 64 (``model.encode``): the model's own batched rate,
   b) one text per call: the one-at-a-time rate,
   c) by the indexer end to end: messages saved through ``MessageManager.save`` (not timed), then
      ``Indexer.drain`` reads the outbox from Redis, reads each message, embeds, upserts into
      LanceDB and acks (timed), with the default batch size (256 entries; the model runs them in
      batches of 64 after sorting by length, as ``model.encode`` does in a)),
   d) by the indexer with batches of one.
   The machine is shared, so the four are measured in interleaved rounds (order alternating) and
   summed; each corpus' rates come from the same rounds.
2. **LanceDB query latency and recall@10** for one user's table at each size: ``store.query``
   (what the search API calls after embedding the query; the embedding itself excluded),
   p50/p99 over ``--queries`` queries, and recall@10 against exact brute-force search (numpy) on
   the same vectors. Below ``ann_min_rows`` (20k) the store scans; above it the indexer's upkeep
   (``maintain``) has built an IVF_HNSW_SQ index (build time shown). A flat scan of the big table
   is timed too, for comparison.
   Vectors: 100k real embeddings would take ~10 minutes to compute here, so the tables hold
   real embeddings of docstring sentences plus normalised mixtures of two of them with a little
   noise (near the real data, not uniform noise); queries are embeddings of held-out sentences.

Uses a unique Redis key prefix (deleted at the end) and a temporary LanceDB folder. Not a test.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PREFIX = f"mookti-bench:search-{uuid.uuid4().hex[:8]}:"
os.environ["MOOKTI_REDIS_PREFIX"] = PREFIX
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
os.environ["MOOKTI_EMBEDDINGS_BACKEND"] = "local"
os.environ["MOOKTI_VECTOR_BACKEND"] = "lancedb"
os.environ["MOOKTI_LOG_LEVEL"] = "WARNING"
WORKDIR = Path(tempfile.mkdtemp(prefix="mookti-bench-search-"))
os.environ["MOOKTI_LANCEDB_PATH"] = str(WORKDIR / "lancedb")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from mookti.redis import get_redis  # noqa: E402
from storage.managers import chats, messages, users  # noqa: E402
from storage.search.embeddings import get_embeddings  # noqa: E402
from storage.search.indexer import Indexer, indexer_options  # noqa: E402
from storage.search.vectors import VectorRecord  # noqa: E402
from storage.search.vectors.filters import parse as parse_filter  # noqa: E402
from storage.search.vectors.lancedb import LanceDBVectorStore  # noqa: E402

BATCH = indexer_options()["BATCH_SIZE"]
INDEXER_EMBED_SHARE: list[float] = []  # per batched indexer run: time in the model / drain time


# --- text -----------------------------------------------------------------------------------
def docstring_sentences(limit: int) -> list[str]:
    """Distinct English sentences from the standard library's docstrings."""
    found: dict[str, None] = {}
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Module | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node) or ""
                for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                    if 40 <= len(sentence) <= 240 and sentence[0].isupper() and ">>>" not in sentence:
                        found[sentence] = None
                        if len(found) >= limit:
                            return list(found)
    return list(found)


def chat_texts(sentences: list[str], count: int, rng: random.Random) -> list[str]:
    """Longer messages: 1-3 sentences (about 40 tokens)."""
    return [" ".join(rng.sample(sentences, rng.randint(1, 3))) for _ in range(count)]


def short_texts(sentences: list[str], count: int, rng: random.Random) -> list[str]:
    """Short chat messages: one sentence cut to at most 12 words (about 15 tokens)."""
    return [" ".join(rng.choice(sentences).split()[: rng.randint(4, 12)]) for _ in range(count)]


# --- measurements ---------------------------------------------------------------------------
def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measured(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads): CPU time is less sensitive to the
    other work on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def indexer_seconds(texts: list[str], batch_size: int, label: str) -> tuple[float, float]:
    """Save ``texts`` as messages (not timed), then time ``Indexer.drain`` over them."""
    user = users.create(f"{label}-{uuid.uuid4().hex[:6]}@bench.example", "bench-password", user_type="pro")
    chat_ids = [chats.create(user["id"], title=f"{label} chat {i}")["id"] for i in range(16)]
    for start in range(0, len(texts), 100):
        group = texts[start : start + 100]
        batch = [
            {"chatId": chat_ids[(start + i) % 16], "role": "assistant", "parts": [{"type": "text", "text": t}]}
            for i, t in enumerate(group)
        ]
        messages.save(user["id"], batch)
    options = {"BATCH_SIZE": batch_size, "BLOCK_MS": 0, "MAINTAIN_SECONDS": 1e9}
    indexer = Indexer(f"bench-{label}-{uuid.uuid4().hex[:4]}", options=options)
    indexer.start()
    wall, cpu = measured(lambda: indexer.drain(timeout=3600, maintain=False))
    if indexer.stats["upserted"] != len(texts):
        raise SystemExit(f"indexer upserted {indexer.stats['upserted']} of {len(texts)}")
    INDEXER_EMBED_SHARE.append(indexer.stats["embed_seconds"] / wall)
    return wall, cpu


def throughput(model, texts: list[str], single_count: int, rounds: int) -> dict[str, dict[str, float]]:
    """Rates of each way, in interleaved rounds (order alternating) on a shared, busy machine.

    Returns, per way, the overall rate by wall clock and by CPU time, and the per-round wall-clock
    ratios of the indexer to the model (the same texts, back to back: drift in the machine's load
    between rounds cancels out).
    """
    indexer_seconds(texts[:32], BATCH, "warm-up")  # first LanceDB table, Redis connections: not timed
    INDEXER_EMBED_SHARE.clear()
    names = ("batched", "indexer", "single", "indexer_single")
    wall, cpu = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    counts = dict.fromkeys(names, 0)
    ratios: dict[str, list[float]] = {"indexer/batched": [], "indexer/single": []}
    size, single_size = len(texts) // rounds, single_count // rounds
    for number in range(rounds):
        part = texts[number * size : (number + 1) * size]
        few = part[:single_size]
        steps = [
            (
                "batched",
                part,
                lambda p=part: measured(lambda: model.encode(p, batch_size=64, normalize_embeddings=True)),
            ),
            ("indexer", part, lambda p=part, n=number: indexer_seconds(p, BATCH, f"batched{n}")),
            ("single", few, lambda f=few: measured(lambda: [model.encode([t], normalize_embeddings=True) for t in f])),
            ("indexer_single", few, lambda f=few, n=number: single_indexer_seconds(f, n)),
        ]
        this_round = {}
        for name, items, run in steps if number % 2 == 0 else reversed(steps):
            seconds, cpu_seconds = run()
            wall[name] += seconds
            cpu[name] += cpu_seconds
            counts[name] += len(items)
            this_round[name] = rate(len(items), seconds)
        ratios["indexer/batched"].append(this_round["indexer"] / this_round["batched"])
        ratios["indexer/single"].append(this_round["indexer"] / this_round["single"])
    return {
        "wall": {name: rate(counts[name], wall[name]) for name in names},
        "cpu": {name: rate(counts[name], cpu[name]) for name in names},
        "ratios": {name: statistics.median(values) for name, values in ratios.items()},
        "spread": {name: (min(values), max(values)) for name, values in ratios.items()},
        "embed_share": statistics.median(INDEXER_EMBED_SHARE),
    }


def single_indexer_seconds(texts: list[str], number: int) -> tuple[float, float]:
    """The indexer with batches of one (its model share is not part of the batched figure)."""
    seconds = indexer_seconds(texts, 1, f"single{number}")
    INDEXER_EMBED_SHARE.pop()
    return seconds


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def synthetic_table(base: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` unit vectors: the real ones first, then mixtures of two real ones plus noise."""
    if size <= len(base):
        return base[:size].copy()
    extra = size - len(base)
    a = base[rng.integers(0, len(base), extra)]
    b = base[rng.integers(0, len(base), extra)]
    weight = rng.uniform(0.5, 0.9, size=(extra, 1))
    mixed = weight * a + (1 - weight) * b + rng.normal(scale=0.02, size=a.shape)
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return np.vstack([base, mixed.astype("float32")])


def latency_and_recall(store: LanceDBVectorStore, namespace: str, matrix: np.ndarray, queries: np.ndarray) -> dict:
    store.query(namespace, queries[0].tolist(), top_k=10)  # warm the table and index caches
    latencies, recalls = [], []
    for query in queries:
        started = time.perf_counter()
        found = store.query(namespace, query.tolist(), top_k=10)
        latencies.append((time.perf_counter() - started) * 1000)
        exact = set(np.argpartition(-(matrix @ query), 10)[:10].tolist())
        recalls.append(len({int(m.id.rsplit("#", 1)[1]) for m in found} & exact) / 10)
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "recall": statistics.mean(recalls)}


def flat_latency(store: LanceDBVectorStore, namespace: str, queries: np.ndarray) -> float:
    table = store._table(namespace)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        table.search(query.tolist()).distance_type("cosine").limit(10).bypass_vector_index().select(
            ["id", "_distance"]
        ).to_list()
        latencies.append((time.perf_counter() - started) * 1000)
    return percentile(latencies, 50)


def fill(store: LanceDBVectorStore, namespace: str, matrix: np.ndarray, texts: list[str]) -> None:
    """Records with a text for the full-text index (the sentence behind the row, or one it mixes)."""
    for start in range(0, len(matrix), 5000):
        records = [
            VectorRecord(
                f"msg:c{i % 500}#{i}",
                matrix[i].tolist(),
                {"chatId": f"c{i % 500}", "kind": "message", "role": "user", "createdAt": float(i)},
                texts[i % len(texts)],
            )
            for i in range(start, min(len(matrix), start + 5000))
        ]
        store.upsert(namespace, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1024, help="messages per corpus")
    parser.add_argument("--single", type=int, default=192, help="texts embedded one at a time, per corpus")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--parts", default="throughput,latency", help="which parts to run")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--base", type=int, default=4000, help="real embeddings behind the synthetic tables")
    args = parser.parse_args()
    rng = random.Random(42)
    np_rng = np.random.default_rng(42)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    try:
        sentences = docstring_sentences(args.base + args.queries)
        rng.shuffle(sentences)
        corpora = {
            "short chat messages": short_texts(sentences, args.messages, rng),
            "longer messages": chat_texts(sentences, args.messages, rng),
        }
        texts = corpora["longer messages"]
        embeddings = get_embeddings()
        started = time.perf_counter()
        embeddings.warm_up()
        model = embeddings.model
        print(
            f"model {embeddings.model_id} loaded in {time.perf_counter() - started:.1f}s, torch threads "
            f"{__import__('torch').get_num_threads()}, {os.cpu_count()} CPUs"
        )
        model.encode(texts[:64], batch_size=64)  # warm-up
        if "throughput" in args.parts:
            run_throughput(model, corpora, args)
        if "latency" in args.parts:
            run_latency(embeddings, sentences, sizes, args, np_rng)
        print(
            "\nGoals: indexer >= 80% of the model's batched rate and >= 3x one at a time;"
            " LanceDB p50 <= 20 ms and recall@10 >= 0.95 at 100k vectors of one user."
        )
    finally:
        client = get_redis()
        batch = list(client.scan_iter(match=f"{PREFIX}*", count=1000))
        for start in range(0, len(batch), 500):
            client.unlink(*batch[start : start + 500])
        shutil.rmtree(WORKDIR, ignore_errors=True)


def run_throughput(model, corpora: dict[str, list[str]], args: argparse.Namespace) -> None:
    for name, texts in corpora.items():
        tokens = statistics.mean(len(model.tokenizer(t)["input_ids"]) for t in texts)
        print(
            f"\n## Indexer throughput: {name} ({len(texts)} messages, {tokens:.0f} tokens avg,"
            f" {args.rounds} interleaved rounds)"
        )
        result = throughput(model, texts, args.single, args.rounds)
        for clock in ("wall", "cpu"):
            r = result[clock]
            print(
                f"  {clock + ' clock' if clock == 'wall' else 'CPU time '}:  model batched {r['batched']:6.1f}/s,"
                f" model one per call {r['single']:6.1f}/s, indexer (batches of {BATCH}) {r['indexer']:6.1f}/s"
                f" = {r['indexer'] / r['batched']:.0%} of batched and {r['indexer'] / r['single']:.1f}x one per call,"
                f" indexer with batches of 1 {r['indexer_single']:6.1f}/s"
            )
        low, high = result["spread"]["indexer/batched"]
        low_single, high_single = result["spread"]["indexer/single"]
        print(
            f"  per-round median: indexer = {result['ratios']['indexer/batched']:.0%} of the model's batched rate"
            f" (rounds {low:.0%}-{high:.0%}; goal >= 80%), {result['ratios']['indexer/single']:.1f}x the model"
            f" one text per call (rounds {low_single:.1f}-{high_single:.1f}x; goal >= 3x)"
        )
        print(
            f"  inside the batched indexer runs, {result['embed_share']:.0%} of the time is the model (median; the rest"
            " is Redis reads, LanceDB upserts, acks): the indexer's rate is that share of the model's rate on the"
            " same batches, measured in the same moment"
        )


def run_latency(embeddings, sentences: list[str], sizes: list[int], args: argparse.Namespace, np_rng) -> None:
    print(
        f"\n## LanceDB query latency (store.query, embedding excluded) and recall@10, one user, {args.queries} queries"
    )
    base = np.asarray(embeddings.embed(sentences[: args.base]), dtype="float32")
    queries = np.asarray(embeddings.embed(sentences[args.base : args.base + args.queries]), dtype="float32")
    for size in sizes:
        store = LanceDBVectorStore(path=str(WORKDIR / f"lance-{size}"))
        namespace = "user-bench"
        matrix = synthetic_table(base, size, np_rng)
        texts = sentences[: args.base]
        load = timed(lambda s=store, m=matrix, n=namespace, t=texts: fill(s, n, m, t))
        build = timed(lambda s=store, n=namespace: s.maintain([n]))
        table = store._table(namespace)
        partitions = store._partitions(table)
        index = f"IVF_HNSW_SQ, {partitions} partitions" if partitions else "no ANN index (exact scan)"
        result = latency_and_recall(store, namespace, matrix, queries)
        print(
            f"{size:>7} vectors: p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms  recall@10 "
            f"{result['recall']:.3f}   [{index}; load {load:.1f}s, maintain/build {build:.1f}s]"
        )
        if partitions:
            flat = flat_latency(store, namespace, queries[:30])
            print(f"{'':>7}          exact scan of the same table: p50 {flat:6.1f} ms (30 queries)")
        words = sentences[args.base : args.base + args.queries]
        store.query(namespace, queries[0].tolist(), top_k=10, text=words[0])
        hybrid = []
        for query, text in zip(queries, words, strict=True):
            started = time.perf_counter()
            store.query(namespace, query.tolist(), top_k=10, text=text)
            hybrid.append((time.perf_counter() - started) * 1000)
        print(
            f"{'':>7}          hybrid (the query's words too, full-text index): p50 {percentile(hybrid, 50):6.1f} ms"
            f"  p99 {percentile(hybrid, 99):6.1f} ms"
        )
        half = parse_filter({"createdAt": {"$gte": size / 2}, "kind": "message"})
        filtered = []
        for query in queries[:50]:
            started = time.perf_counter()
            store.query(namespace, query.tolist(), top_k=10, filter=half)
            filtered.append((time.perf_counter() - started) * 1000)
        print(f"{'':>7}          with a createdAt/kind filter (half the rows): p50 {percentile(filtered, 50):6.1f} ms")


if __name__ == "__main__":
    main()
