"""The keyword side of hybrid search, shared by the stores: terms, the fused score, a sparse encoder.

Meaning alone misses rare exact terms ("RuBisCO", "EXPLAIN ANALYZE", a name): a small model maps
them near any text of the topic. Keywords alone miss paraphrases. Each store finds candidates
both ways and scores them ``cosine + KEYWORD_WEIGHT * keyword`` with ``keyword`` in [0, 1]
(:func:`fuse`): a bounded bonus, so a paraphrase query (whose keyword side is weak and spread)
keeps its semantic order while a rare term's exact match moves its text to the top. A standard
reciprocal-rank fusion was measured to hurt paraphrases (bench/search_quality.py).

- LanceDB: a full-text (BM25) index on the embedded text; ``keyword`` is a hit's BM25 score over
  the best one's, each query term also matched with edits (typos) at a lower weight.
- Pinecone: sparse-dense records (index metric ``dotproduct``; the dense vectors are unit length,
  so their dot product is the cosine): :func:`sparse_vector` hashes terms and their character
  trigrams (typos share most trigrams) into an L2-normalised sparse vector, computed here, so
  ``keyword`` is the cosine of the two sparse vectors and Pinecone's score is the fused one.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections import Counter
from typing import Any

from django.conf import settings

WORD = re.compile(r"\w+")
# Frequent English words that carry no topic (a query's "how do I" must not match everything).
_STOP_LINES = (
    "a about above after again against all am an and any are as at be because been before being below",
    "between both but by can could did do does doing down during each few for from further had has have",
    "having he her here hers herself him himself his how i if in into is it its itself just me more most",
    "my myself no nor not now of off on once only or other our ours ourselves out over own same she",
    "should so some such than that the their theirs them themselves then there these they this those",
    "through to too under until up very was we were what when where which while who whom why will with",
    "would you your yours yourself yourselves explain tell know want mean means",
)
STOP_WORDS = frozenset(word for line in _STOP_LINES for word in line.split())
DEFAULT_KEYWORD_WEIGHT = 0.15
MAX_QUERY_TERMS = 32
MAX_SPARSE_VALUES = 1000  # Pinecone's limit of non-zero values per sparse vector
TRIGRAM_WEIGHT = 0.35  # a trigram's share against its whole term
SPARSE_SPACE = 2**31 - 1


def fold(text: str) -> str:
    """Lower case without accents (``Thermidor`` = ``thermidor``, ``café`` = ``cafe``)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms(text: str) -> list[str]:
    """The words that can carry a topic: folded, no stop words, no single characters."""
    return [w for w in WORD.findall(fold(text)) if len(w) > 1 and w not in STOP_WORDS]


def query_terms(text: str) -> list[str]:
    """A query's distinct terms, at most ``MAX_QUERY_TERMS``."""
    return list(dict.fromkeys(terms(text)))[:MAX_QUERY_TERMS]


def keyword_weight() -> float:
    """``MOOKTI_SEARCH["KEYWORD_WEIGHT"]`` when set, else the embedding model's own (its cosines may
    spread over a narrower range than MiniLM's, for which the default was measured), else 0.15."""
    options: dict[str, Any] = getattr(settings, "MOOKTI_SEARCH", {}) or {}
    if options.get("KEYWORD_WEIGHT") is not None:
        return float(options["KEYWORD_WEIGHT"])
    from storage.search.embeddings import get_embeddings

    try:
        weight = get_embeddings().keyword_weight
    except Exception:  # a backend that cannot be built fails the search elsewhere, with its own message
        weight = None
    return DEFAULT_KEYWORD_WEIGHT if weight is None else float(weight)


def fuse(cosine: float, keyword: float, weight: float | None = None) -> float:
    """The hybrid score: cosine plus a keyword bonus of at most ``weight``."""
    return cosine + (keyword_weight() if weight is None else weight) * max(0.0, min(1.0, keyword))


def edits_allowed(term: str) -> int:
    """Typos tolerated in a term: none in short ones (they would match too much), then one, then two."""
    return 0 if len(term) < 5 else 1 if len(term) < 9 else 2


# --- the sparse encoder (Pinecone) --------------------------------------------------------------
def _feature(token: str) -> int:
    return zlib.crc32(token.encode("utf-8")) % SPARSE_SPACE


def _trigrams(term: str) -> list[str]:
    padded = f"^{term}$"
    return [padded[i : i + 3] for i in range(len(padded) - 2)]


def sparse_vector(text: str, *, query: bool = False) -> dict[str, list[Any]] | None:
    """Pinecone's ``{"indices", "values"}`` of a text (None when it has no terms), L2-normalised.

    A term weighs ``1 + log(tf)`` in a record and 1 in a query; each of its character trigrams a
    ``TRIGRAM_WEIGHT`` share, so a misspelled term still meets most of its trigrams.
    """
    counts = Counter(query_terms(text) if query else terms(text))
    weights: Counter[int] = Counter()
    for term, tf in counts.items():
        weight = 1.0 if query else 1.0 + math.log(tf)
        weights[_feature(term)] += weight
        grams = _trigrams(term)
        for gram in grams:
            weights[_feature("#" + gram)] += weight * TRIGRAM_WEIGHT / math.sqrt(len(grams))
    if not weights:
        return None
    top = weights.most_common(MAX_SPARSE_VALUES)
    norm = math.sqrt(sum(w * w for _, w in top))
    top.sort()
    return {"indices": [i for i, _ in top], "values": [w / norm for _, w in top]}
