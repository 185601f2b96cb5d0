"""Embedding backends behind one small interface, chosen by ``settings.MOOKTI_EMBEDDINGS``.

A backend turns texts into vectors (``embed``) and tells which model made them (``model_id``)
and how long they are (``dimension``), so an index never mixes vectors of two models.
Query embeddings are cached in Redis by model and text hash (``embed_query``), so a repeated
search costs one GET instead of a model call.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from redis import RedisError

from mookti.backends import registry
from mookti.redis import get_redis
from storage.search import keys

DEFAULT_QUERY_CACHE_TTL = 7 * 24 * 3600


class Embeddings(ABC):
    """Turns texts into L2-normalised vectors of one model."""

    #: the names ``MOOKTI_EMBEDDINGS`` accepts besides a dotted path
    aliases = {
        "local": "storage.search.embeddings.local.SentenceTransformerEmbeddings",
        "openai": "storage.search.embeddings.openai.OpenAIEmbeddings",
        "e5": "storage.search.embeddings.multilingual.E5Embeddings",
        "use": "storage.search.embeddings.multilingual.UniversalSentenceEncoderEmbeddings",
    }
    #: how many texts one call to the model handles well (the indexer batches by it)
    batch_size: int = 64
    #: the hybrid score's keyword weight this model's cosine range calls for (None: the default,
    #: 0.15, measured with MiniLM); ``MOOKTI_SEARCH_KEYWORD_WEIGHT`` overrides it
    keyword_weight: float | None = None

    @property
    @abstractmethod
    def model_id(self) -> str:
        """A stable name of the model and its output size, e.g. ``openai/text-embedding-3-small@1536``."""

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Length of every vector ``embed`` returns."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order. Never rejects a long text: it is truncated.

        Raises :class:`mookti.backends.BackendUnavailable` on an outage and
        :class:`mookti.backends.BackendRejected` when the service refuses the input.
        """

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of search queries: ``embed`` unless the model encodes queries differently
        (e5's ``query:`` prefix against ``passage:`` for stored texts)."""
        return self.embed(texts)

    def warm_up(self) -> None:  # noqa: B027 - optional hook, nothing to load by default
        """Load what ``embed`` needs (a model) now instead of on first use."""


def get_embeddings() -> Embeddings:
    """The process-wide backend from ``settings.MOOKTI_EMBEDDINGS`` (built on first use)."""
    return registry.get("MOOKTI_EMBEDDINGS", Embeddings)


def key_safe(name: str) -> str:
    """A model name usable inside a Redis key (no braces: they are hash tags)."""
    return re.sub(r"[^A-Za-z0-9_.@/\-]", "_", name)


def _encode_vector(vector: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _decode_vector(raw: str) -> list[float]:
    return np.frombuffer(base64.b64decode(raw), dtype="<f4").tolist()


@dataclass
class QueryVector:
    """A query's vector and, when it was not cached, the cache write still to do."""

    values: list[float]
    cache_key: str
    cached: bool

    def queue_cache_write(self, pipe: Any) -> None:
        """Queue the cache SET on a pipeline the caller sends anyway (saves a round trip)."""
        if not self.cached:
            ttl = getattr(settings, "MOOKTI_SEARCH", {}).get("QUERY_CACHE_TTL", DEFAULT_QUERY_CACHE_TTL)
            pipe.set(self.cache_key, _encode_vector(self.values), ex=ttl)


def query_vector(text: str, embeddings: Embeddings | None = None) -> QueryVector:
    """The query's vector, from the Redis cache when an identical query was embedded lately.

    A Redis hiccup only skips the cache; it never fails the search by itself.
    """
    embeddings = embeddings or get_embeddings()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    cache_key = keys.query_embedding(key_safe(embeddings.model_id), digest)
    try:
        cached = get_redis().get(cache_key)
    except RedisError:
        cached = None
    if cached:
        vector = _decode_vector(cached)
        if len(vector) == embeddings.dimension:
            return QueryVector(vector, cache_key, cached=True)
    return QueryVector(embeddings.embed_queries([text])[0], cache_key, cached=False)


def embed_query(text: str, embeddings: Embeddings | None = None) -> list[float]:
    """:func:`query_vector`, writing the cache at once."""
    result = query_vector(text, embeddings)
    if not result.cached:
        with contextlib.suppress(RedisError):
            pipe = get_redis().pipeline(transaction=False)
            result.queue_cache_write(pipe)
            pipe.execute()
    return result.values
