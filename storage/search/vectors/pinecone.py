"""Pinecone through the official SDK (v10), classic vector endpoints of an existing index.

The index is created outside the app (console or IaC, with the embedding model's dimension and
the ``dotproduct`` metric, which sparse-dense records need; the dense vectors are unit length, so
their dot product is the cosine). Records carry sparse values of their text from the local encoder
(:mod:`storage.search.hybrid`) and a query sends its own, scaled by the keyword weight, so
Pinecone's score is the fused hybrid score. ``hybrid=False`` (``PINECONE_HYBRID=false``) keeps a
dense-only index of the cosine metric working. The app only speaks the data plane at ``host``:
upsert, query, list, delete, describe_index_stats. One namespace per user plus the learning ones.

Retries: the v10 SDK's REST transport retries data-plane calls itself, with a fixed policy
(``RetryConfig()`` defaults; ``Pinecone(retry_config=...)`` only reaches the control plane and gRPC):
up to 3 retries of 408/429/500/502/503/504 and connection errors, decorrelated-jitter backoff from
0.25 s, ``Retry-After`` honoured (capped at 60 s), and a per-host retry budget that stops retrying
during a sustained outage. What it gives up on surfaces here as :class:`BackendUnavailable`: the
indexer then backs off exponentially and retries the batch (without counting it against the
entries), and the search API answers 503.
Writes are split within Pinecone's limits: 1,000 records and 2 MB per upsert, 1,000 ids per delete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from mookti.backends import BackendRejected, BackendUnavailable, PerProcess
from storage.search.hybrid import keyword_weight, sparse_vector
from storage.search.vectors import Match, VectorRecord, VectorStore
from storage.search.vectors.filters import Combine, Filter

T = TypeVar("T")
MAX_RECORDS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
REQUEST_BYTES_MARGIN = 64 * 1024
DEFAULT_NAMESPACE = "__default__"


def to_pinecone(node: Filter | None) -> dict[str, Any] | None:
    """Pinecone's filter JSON of a checked filter (its own language: the tree maps one to one)."""
    if node is None:
        return None
    if isinstance(node, Combine):
        return {node.op: [to_pinecone(part) for part in node.parts]}
    value = list(node.value) if isinstance(node.value, tuple) else node.value
    return {node.field: {node.op: value}}


def record_json(record: VectorRecord, hybrid: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": record.id, "values": [float(x) for x in record.values]}
    sparse = sparse_vector(record.text) if hybrid and record.text else None
    if sparse:
        body["sparse_values"] = sparse
    if record.metadata:
        body["metadata"] = record.metadata
    return body


def upsert_batches(
    records: Sequence[VectorRecord], max_records: int, max_bytes: int, hybrid: bool = True
) -> Iterator[list[dict]]:
    """Groups of records within the record count and (JSON) request size limits."""
    batch: list[dict[str, Any]] = []
    size = 0
    for record in records:
        body = record_json(record, hybrid)
        cost = len(json.dumps(body, separators=(",", ":")).encode()) + 1
        if batch and (len(batch) >= max_records or size + cost > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += cost
    if batch:
        yield batch


class PineconeVectorStore(VectorStore):
    def __init__(
        self,
        api_key: str | None = None,
        host: str | None = None,
        timeout: float = 30.0,
        max_records: int = MAX_RECORDS,
        max_request_bytes: int = MAX_REQUEST_BYTES - REQUEST_BYTES_MARGIN,
        additional_headers: dict[str, str] | None = None,
        hybrid: bool | None = None,
    ) -> None:
        self.api_key = api_key or os.environ.get("PINECONE_API_KEY") or ""
        self.host = host or os.environ.get("PINECONE_INDEX_HOST") or ""
        if not self.api_key or not self.host:
            raise ValueError("Pinecone needs an API key and the index host (PINECONE_API_KEY, PINECONE_INDEX_HOST).")
        self.timeout = timeout
        self.max_batch = max_records
        self.max_request_bytes = max_request_bytes
        self.additional_headers = additional_headers
        if hybrid is None:
            hybrid = os.environ.get("PINECONE_HYBRID", "true").lower() not in ("0", "false", "no", "off")
        self.hybrid = hybrid
        self._index = PerProcess(self._connect)

    def describe(self) -> str:
        return f"pinecone:{self.host}" + ("" if self.hybrid else "#dense")

    @property
    def index(self) -> Any:
        """The SDK's index client of this process (an HTTP pool does not survive a fork)."""
        return self._index.get()

    def _connect(self) -> Any:
        from pinecone import Pinecone

        client = Pinecone(api_key=self.api_key, timeout=self.timeout, additional_headers=self.additional_headers)
        return client.index(host=self.host)

    @staticmethod
    def _call(call: Callable[[], T]) -> T:
        """SDK errors as backend errors: throttling, 5xx, timeouts and auth are outages; other 4xx rejections."""
        from pinecone.errors import (
            ApiError,
            ForbiddenError,
            NotFoundError,
            PineconeConnectionError,
            PineconeError,
            PineconeTimeoutError,
            PineconeValueError,
            RateLimitError,
            ServiceError,
            UnauthorizedError,
        )

        try:
            return call()
        except (RateLimitError, ServiceError, PineconeConnectionError, PineconeTimeoutError) as exc:
            raise BackendUnavailable(f"Pinecone is unavailable: {exc}") from exc
        except (UnauthorizedError, ForbiddenError, NotFoundError) as exc:
            raise BackendUnavailable(f"Pinecone refused the credentials or index host: {exc}") from exc
        except (ApiError, PineconeValueError) as exc:
            raise BackendRejected(f"Pinecone refused the request: {exc}") from exc
        except PineconeError as exc:
            raise BackendUnavailable(f"Pinecone failed: {exc}") from exc

    def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> None:
        for batch in upsert_batches(records, self.max_batch, self.max_request_bytes, self.hybrid):
            self._call(lambda b=batch: self.index.upsert(vectors=b, namespace=namespace, show_progress=False))

    def query(
        self,
        namespace: str,
        vector: Sequence[float],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        text: str | None = None,
    ) -> list[Match]:
        sparse = sparse_vector(text, query=True) if self.hybrid and text else None
        if sparse:  # Pinecone's score is then dense·dense + sparse·sparse: the fused score
            weight = keyword_weight()
            sparse["values"] = [weight * value for value in sparse["values"]]
        response = self._call(
            lambda: self.index.query(
                top_k=top_k,
                vector=[float(x) for x in vector],
                sparse_vector=sparse,
                namespace=namespace,
                filter=to_pinecone(filter),
                include_metadata=True,
                include_values=False,
            )
        )
        return [Match(m.id, float(m.score), dict(m.metadata or {}), namespace) for m in response.matches]

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        ids = list(ids)
        for start in range(0, len(ids), self.max_batch):
            batch = ids[start : start + self.max_batch]
            self._call(lambda b=batch: self.index.delete(ids=b, namespace=namespace))

    def list_ids(self, namespace: str, prefix: str) -> list[str]:
        found: list[str] = []
        token = None
        while True:
            page = self._call(
                lambda t=token: self.index.list_paginated(
                    prefix=prefix, limit=100, pagination_token=t, namespace=namespace
                )
            )
            found.extend(item.id for item in page.vectors)
            token = page.pagination.next if page.pagination else None
            if not token:
                return found

    def delete_namespace(self, namespace: str) -> None:
        from pinecone.errors import NotFoundError

        def delete_all() -> None:
            with contextlib.suppress(NotFoundError):  # never written: nothing to remove
                self.index.delete(delete_all=True, namespace=namespace)

        self._call(delete_all)

    def stats(self) -> dict[str, Any]:
        response = self._call(lambda: self.index.describe_index_stats())
        namespaces = {
            ("" if name == DEFAULT_NAMESPACE else name): int(summary.vector_count)
            for name, summary in (response.namespaces or {}).items()
        }
        return {
            "dimension": response.dimension,
            "namespaces": namespaces,
            "total": int(response.total_vector_count or 0),
        }

    def dimension(self) -> int | None:
        return self.stats()["dimension"]

    def ping(self) -> dict[str, Any]:
        stats = self.stats()
        return {"ok": True, "backend": "pinecone", "host": self.host, "total": stats["total"]}
