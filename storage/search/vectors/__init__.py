"""Vector-store backends behind one interface, chosen by ``settings.MOOKTI_VECTOR_STORE``.

Layout (the same on every backend): one namespace per user (``user-{userId}`` by default) plus
the shared learning-content namespaces; record ids ``msg:{chatId}#{messageId}`` and
``doc:{documentId}#{chunk}``, so a chat's or document's records share an id prefix; metadata
``userId, chatId, messageId, documentId, chunk, role, kind, createdAt`` (epoch seconds),
``title``, ``snippet``. Metadata never holds nulls and stays far below Pinecone's 40 KB.

The store is derived data: the indexer is its only writer and ``manage.py reindex`` rebuilds it
from Redis. Its model and dimension are recorded in Redis (``vector-index:meta``); a process
configured for another model refuses to use it (:func:`check_index`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from mookti.backends import IndexMismatch, registry
from mookti.redis import get_redis
from storage.search import keys
from storage.search.vectors.filters import Filter

MAX_METADATA_BYTES = 40 * 1024
SNIPPET_CHARS = 300
MAX_TITLE_CHARS = 500


@dataclass
class VectorRecord:
    id: str
    values: list[float]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the embedded text, for the store's keyword side (LanceDB's full-text index, Pinecone's sparse values)
    text: str = ""


@dataclass
class Match:
    id: str
    score: float
    metadata: dict[str, Any]
    namespace: str = ""


class VectorStore(ABC):
    """Upsert, query with a metadata filter, delete (ids, chat, document, namespace), stats.

    Each backend translates the checked filter tree (:mod:`.filters`) into its own language.
    """

    #: the names ``MOOKTI_VECTOR_STORE`` accepts besides a dotted path
    aliases = {
        "lancedb": "storage.search.vectors.lancedb.LanceDBVectorStore",
        "pinecone": "storage.search.vectors.pinecone.PineconeVectorStore",
    }

    #: records per write request
    max_batch: int = 1000

    @abstractmethod
    def describe(self) -> str:
        """Where the vectors live, e.g. ``lancedb:/srv/var/lancedb`` (recorded with the index)."""

    @abstractmethod
    def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> None: ...

    @abstractmethod
    def query(
        self,
        namespace: str,
        vector: Sequence[float],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        text: str | None = None,
    ) -> list[Match]:
        """Best matches first. Without ``text``, ``score`` is cosine similarity; with it, the store's
        hybrid score: cosine plus a bounded keyword bonus (rare exact terms rank first, paraphrases
        keep their order), see :mod:`storage.search.hybrid`."""

    @abstractmethod
    def delete(self, namespace: str, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def list_ids(self, namespace: str, prefix: str) -> list[str]:
        """Every record id in ``namespace`` that starts with ``prefix``."""

    def delete_prefix(self, namespace: str, prefix: str) -> None:
        """Every record whose id starts with ``prefix`` (a chat's, a document's)."""
        self.delete(namespace, self.list_ids(namespace, prefix))

    @abstractmethod
    def delete_namespace(self, namespace: str) -> None: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """``{"dimension": int | None, "namespaces": {name: count}, "total": int}``."""

    @abstractmethod
    def dimension(self) -> int | None:
        """The dimension of the stored vectors, or None while the store is empty."""

    def ping(self) -> dict[str, Any]:
        """A cheap liveness check for the health endpoint."""
        return {"ok": True}

    def maintain(self, namespaces: Iterable[str] | None = None) -> None:  # noqa: B027 - optional hook
        """Periodic upkeep by the indexer (compaction, ANN index refresh); a no-op by default."""


def get_vector_store() -> VectorStore:
    """The process-wide store from ``settings.MOOKTI_VECTOR_STORE`` (opened on first use)."""
    return registry.get("MOOKTI_VECTOR_STORE", VectorStore)


# --- ids, namespaces, metadata -----------------------------------------------------------------
def message_vector_id(chat_id: str, message_id: str) -> str:
    return f"msg:{chat_id}#{message_id}"


def document_vector_id(document_id: str, chunk: int) -> str:
    return f"doc:{document_id}#{chunk}"


def message_chunk_id(chat_id: str, message_id: str, chunk: int) -> str:
    """A message's first record is ``msg:{chatId}#{messageId}``, a long message's next ones ``…:{n}``."""
    base = message_vector_id(chat_id, message_id)
    return base if chunk == 0 else f"{base}:{chunk}"


def record_base(vector_id: str) -> str:
    """The first record's id of a message chunk's id (ids never contain ':' after the '#')."""
    head, _, item = vector_id.partition("#")
    return f"{head}#{item.partition(':')[0]}" if item else vector_id


def chat_prefix(chat_id: str) -> str:
    return f"msg:{chat_id}#"


def document_prefix(document_id: str) -> str:
    return f"doc:{document_id}#"


def parse_vector_id(vector_id: str) -> tuple[str, str, str]:
    """``(kind, parent id, item)``: ("message", chatId, messageId) or ("document", documentId, chunk)."""
    head, _, item = record_base(vector_id).partition("#")
    kind, _, parent = head.partition(":")
    return {"msg": "message", "doc": "document"}.get(kind, kind), parent, item


def search_settings() -> dict[str, Any]:
    return getattr(settings, "MOOKTI_SEARCH", {}) or {}


def user_namespace(user_id: str) -> str:
    return search_settings().get("USER_NAMESPACE", "user-{userId}").format(userId=user_id)


def learning_namespaces() -> list[str]:
    return list(search_settings().get("LEARNING_NAMESPACES", []))


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """No nulls (Pinecone refuses them), short title, and the whole under the 40 KB limit."""
    clean = {k: v for k, v in metadata.items() if v is not None and v != ""}
    if isinstance(clean.get("title"), str):
        clean["title"] = clean["title"][:MAX_TITLE_CHARS]
    while len(json.dumps(clean, ensure_ascii=False).encode()) > MAX_METADATA_BYTES and clean.get("snippet"):
        clean["snippet"] = clean["snippet"][: len(clean["snippet"]) // 2]
    return clean


# --- model and dimension recorded with the index -----------------------------------------------
# What the records hold besides the vector; a change (2: the text for keywords, chunked messages
# with their chat's title) makes a process refuse an index of the older layout until `reindex`.
LAYOUT = "2"


def index_identity(embeddings: Any, store: VectorStore) -> dict[str, str]:
    return {
        "model": embeddings.model_id,
        "dimension": str(embeddings.dimension),
        "store": store.describe(),
        "layout": LAYOUT,
    }


def check_index(embeddings: Any, store: VectorStore, *, claim: bool = False) -> dict[str, str]:
    """Refuse to mix models: the index's recorded model/dimension/store must be this process's.

    ``claim`` (the indexer, reindex) records the identity when the index has none yet.
    Raises :class:`IndexMismatch` with the way out (``manage.py reindex``).
    """
    wanted = index_identity(embeddings, store)
    client = get_redis()
    recorded = client.hgetall(keys.vector_index_meta())
    if not recorded:
        stored_dimension = store.dimension()
        if stored_dimension is not None and stored_dimension != embeddings.dimension:
            raise IndexMismatch(
                f"The vector store holds {stored_dimension}-dimensional vectors but {embeddings.model_id} makes "
                f"{embeddings.dimension}-dimensional ones. Run `manage.py reindex` to rebuild it"
                + (
                    " (for Pinecone, point PINECONE_INDEX_HOST at an index of that dimension first)."
                    if "pinecone" in wanted["store"]
                    else "."
                )
            )
        if claim:
            client.hset(keys.vector_index_meta(), mapping=wanted)
        return wanted
    for name in ("model", "dimension", "store", "layout"):
        if recorded.get(name) != wanted[name]:
            raise IndexMismatch(
                f"The vector index was built with {recorded.get('model')} ({recorded.get('dimension')} dimensions) "
                f"in {recorded.get('store')}; this process uses {wanted['model']} ({wanted['dimension']} dimensions) "
                f"in {wanted['store']}"
                + (
                    ""
                    if recorded.get("layout") == LAYOUT
                    else f" (record layout {recorded.get('layout', '1')}, now {LAYOUT})"
                )
                + ". Run `manage.py reindex` to rebuild the index for the new settings."
            )
    return recorded


def record_index(embeddings: Any, store: VectorStore) -> None:
    """Record this process's model as the index's (``reindex`` after rebuilding)."""
    get_redis().hset(keys.vector_index_meta(), mapping=index_identity(embeddings, store))


def recorded_index() -> dict[str, str]:
    """The model and dimension the index was built with (empty before the first build)."""
    return get_redis().hgetall(keys.vector_index_meta())
