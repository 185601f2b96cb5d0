"""OpenAI embeddings through the official SDK; any OpenAI-compatible server works via ``base_url``.

Limits of ``POST /embeddings`` (text-embedding-3-*): at most 2,048 inputs and 300,000 tokens per
request, 8,192 tokens per input, no empty strings. Inputs are cut and requests are split so no
request exceeds them. Without a tokenizer download (none is reachable here) the UTF-8 byte
length is used as the token count: a BPE token (cl100k/o200k) is at least one byte, so it is an
upper bound and never lets a request through that the API would reject for length.

Options not given come from the environment: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``OPENAI_EMBEDDING_MODEL`` (default ``text-embedding-3-small``), ``OPENAI_EMBEDDING_DIMENSIONS``,
``OPENAI_EMBEDDING_ENCODING``.

``encoding_format`` is sent as ``"float"`` by default: several compatible servers (older vLLM,
some gateways) do not implement ``"base64"``. With ``"base64"`` the vectors come back as
little-endian float32 and are decoded here; ``None`` leaves the choice to the SDK.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mookti.backends import BackendRejected, BackendUnavailable, PerProcess
from storage.search.embeddings import Embeddings, key_safe

KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUTS = 2048
MAX_REQUEST_TOKENS = 300_000
MAX_INPUT_TOKENS = 8191
FROM_ENVIRONMENT = object()  # an option not given: read its environment variable


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, on a character boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def request_batches(texts: Sequence[str], max_inputs: int, max_tokens: int) -> Iterator[tuple[int, list[str]]]:
    """(offset, texts) groups within the per-request input count and (byte-bounded) token sum."""
    start, batch, size = 0, [], 0
    for index, text in enumerate(texts):
        cost = len(text.encode("utf-8"))
        if batch and (len(batch) >= max_inputs or size + cost > max_tokens):
            yield start, batch
            start, batch, size = index, [], 0
        batch.append(text)
        size += cost
    if batch:
        yield start, batch


class OpenAIEmbeddings(Embeddings):
    def __init__(
        self,
        model: str | None = None,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        encoding_format: str | object | None = FROM_ENVIRONMENT,
        max_retries: int = 2,
        timeout: float = 30.0,
        max_inputs: int = MAX_INPUTS,
        max_request_tokens: int = MAX_REQUEST_TOKENS,
        max_input_tokens: int = MAX_INPUT_TOKENS,
        batch_size: int = 256,
        dimension: int | None = None,
    ) -> None:
        if encoding_format is FROM_ENVIRONMENT:
            encoding_format = os.environ.get("OPENAI_EMBEDDING_ENCODING") or "float"
        if encoding_format not in ("float", "base64", None):
            raise ValueError('encoding_format must be "float", "base64" or None.')
        model = model or os.environ.get("OPENAI_EMBEDDING_MODEL") or "text-embedding-3-small"
        self.model = model
        self.dimensions = dimensions or int(os.environ.get("OPENAI_EMBEDDING_DIMENSIONS") or 0) or None
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or ""
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.encoding_format = encoding_format
        self.max_retries = max_retries
        self.timeout = timeout
        self.max_inputs = min(max_inputs, MAX_INPUTS)
        self.max_request_tokens = max_request_tokens
        self.max_input_tokens = max_input_tokens
        self.batch_size = batch_size
        self._dimension = dimension or self.dimensions or KNOWN_DIMENSIONS.get(model)
        self._client = PerProcess(self._connect)

    @property
    def model_id(self) -> str:
        return key_safe(f"openai/{self.model}@{self.dimension}")

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            # an unknown model on a compatible server: ask it once
            self._dimension = len(self.embed(["dimension probe"])[0])
        return self._dimension

    @property
    def client(self) -> Any:
        return self._client.get()

    def _connect(self) -> Any:
        from openai import OpenAI

        # local servers (Ollama, vLLM, ...) take any key; the SDK insists on one
        return OpenAI(
            api_key=self.api_key or "unused", base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # the API rejects empty strings; a space embeds to "nothing in particular"
        prepared = [truncate_utf8(text, self.max_input_tokens) or " " for text in texts]
        vectors: list[list[float]] = [[] for _ in prepared]
        for offset, batch in request_batches(prepared, self.max_inputs, self.max_request_tokens):
            for index, vector in enumerate(self._request(batch)):
                vectors[offset + index] = vector
        return vectors

    def _request(self, batch: list[str]) -> list[list[float]]:
        import openai

        options: dict[str, Any] = {"model": self.model, "input": batch}
        if self.dimensions:
            options["dimensions"] = self.dimensions
        if self.encoding_format:
            options["encoding_format"] = self.encoding_format
        try:
            response = self.client.embeddings.create(**options)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            raise BackendRejected(f"The embedding service refused the input: {exc.message}") from exc
        except openai.APIStatusError as exc:
            raise BackendUnavailable(f"The embedding service answered {exc.status_code}: {exc.message}") from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise BackendUnavailable(f"The embedding service is unreachable: {exc}") from exc
        except ValueError as exc:  # "No embedding data received"
            raise BackendUnavailable(f"The embedding service sent no embeddings: {exc}") from exc
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(batch):
            raise BackendUnavailable(f"The embedding service returned {len(data)} vectors for {len(batch)} texts.")
        vectors = [self._decode(item.embedding) for item in data]
        if self._dimension is not None and any(len(v) != self._dimension for v in vectors):
            raise BackendUnavailable(
                f"The embedding service returned vectors of length {len(vectors[0])}, configured {self._dimension}."
            )
        return vectors

    @staticmethod
    def _decode(embedding: Any) -> list[float]:
        array = (
            np.frombuffer(base64.b64decode(embedding), dtype="<f4")
            if isinstance(embedding, str)
            else np.asarray(embedding, dtype="float32")
        )
        norm = float(np.linalg.norm(array))
        # OpenAI's vectors are normalised already; compatible servers' may not be
        return (array / norm if norm > 0 else array).astype("float32").tolist()
