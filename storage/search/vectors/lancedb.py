"""LanceDB on local disk: the embedded default vector store.

One table per namespace (a user, or a learning-content namespace), so a user's query only reads
that user's data, as a Pinecone namespace would. Only the indexer writes (single writer, so no
commit conflicts between processes); web processes read, and see new versions because the
connection has a read consistency interval (``read_consistency_seconds``, 1 s: checking for a new
version on every query costs 2-3 ms). The indexer calls :meth:`maintain` periodically: ``optimize()``
(compaction, old-version cleanup, new rows folded into the indexes) with retry, and once a table
reaches ``ann_min_rows`` an IVF_HNSW_SQ index (one partition per ``partition_rows`` rows), rebuilt
with more partitions each time the table has doubled. Queries probe half the partitions with HNSW
``ef`` 100 and re-rank twice the candidates on full vectors (``refine_factor`` 2). Below
``ann_min_rows`` a query is an exact scan (about 15 ms at 10k rows here). Measurements and the
parameter choice: ``bench/search.py``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from django.conf import settings

from mookti.backends import BackendRejected, BackendUnavailable, PerProcess
from storage.search.hybrid import edits_allowed, fuse, keyword_weight, query_terms
from storage.search.vectors import Match, VectorRecord, VectorStore
from storage.search.vectors.filters import LIST_OPS, Combine, Filter

logger = logging.getLogger(__name__)
T = TypeVar("T")

COLUMNS = {
    "userId": "user_id",
    "chatId": "chat_id",
    "messageId": "message_id",
    "documentId": "document_id",
    "role": "role",
    "kind": "kind",
    "createdAt": "created_at",
    "title": "title",
    "snippet": "snippet",
    "chunk": "chunk",
}
STRING_COLUMNS = ("user_id", "chat_id", "message_id", "document_id", "role", "kind", "title", "snippet")
VECTOR_INDEX_PREFIX = "vector_p"
TEXT_COLUMN = "text"  # the embedded text, under the full-text (BM25) index
TEXT_INDEX = "text_idx"
RESULT_COLUMNS = ["id", *STRING_COLUMNS, "chunk", "created_at", "extra"]
ID_INDEX = "id_idx"
DELETE_BATCH = 500


SQL_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _sql_literal(value: Any) -> str:
    return repr(value) if isinstance(value, float) else _quote(str(value))


def to_sql(node: Filter | None, columns: dict[str, str] = COLUMNS) -> str | None:
    """A SQL predicate (DataFusion) of a checked filter; ``columns`` maps field -> column."""
    if node is None:
        return None
    if isinstance(node, Combine):
        joiner = " AND " if node.op == "$and" else " OR "
        return "(" + joiner.join(to_sql(part, columns) for part in node.parts) + ")"  # type: ignore[misc]
    column = columns[node.field]
    if node.op in LIST_OPS:
        values = ", ".join(_sql_literal(v) for v in node.value)
        return f"{column} {'IN' if node.op == '$in' else 'NOT IN'} ({values})"
    return f"{column} {SQL_OPS[node.op]} {_sql_literal(node.value)}"


def table_name(namespace: str) -> str:
    """LanceDB table names allow letters, digits, ``_``, ``-`` and ``.``; anything else is escaped."""
    return re.sub(r"[^A-Za-z0-9_.\-]", lambda m: f"_{ord(m.group()):02x}", namespace) or "_"


def schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [pa.field("id", pa.string(), nullable=False), pa.field("vector", pa.list_(pa.float32(), dimension))]
        + [pa.field(name, pa.string()) for name in STRING_COLUMNS]
        + [pa.field("chunk", pa.int32()), pa.field("created_at", pa.float64()), pa.field("extra", pa.string())]
        + [pa.field(TEXT_COLUMN, pa.string())]
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LanceDBVectorStore(VectorStore):
    def __init__(
        self,
        path: str | None = None,
        read_consistency_seconds: float = 1.0,
        ann_min_rows: int = 20_000,
        partition_rows: int = 5_000,
        max_partitions: int = 64,
        probe_fraction: float = 0.5,
        ef: int = 100,
        refine_factor: int = 2,
        ef_construction: int = 150,
        id_index_min_rows: int = 5_000,
        keep_versions_seconds: float = 600.0,
        maintenance_retries: int = 5,
    ) -> None:
        path = path or os.environ.get("MOOKTI_LANCEDB_PATH")
        self.path = Path(path) if path else Path(settings.DATA_DIR) / "lancedb"
        self.read_consistency = timedelta(seconds=read_consistency_seconds)
        self.ann_min_rows = ann_min_rows
        self.partition_rows = partition_rows
        self.max_partitions = max_partitions
        self.probe_fraction = probe_fraction
        self.ef = ef
        self.refine_factor = refine_factor
        self.ef_construction = ef_construction
        self.id_index_min_rows = id_index_min_rows
        self.keep_versions = timedelta(seconds=keep_versions_seconds)
        self.maintenance_retries = maintenance_retries
        self._db = PerProcess(self._connect)
        self._tables: dict[str, Any] = {}

    # --- connection ---------------------------------------------------------------------------
    def describe(self) -> str:
        return f"lancedb:{self.path.resolve()}"

    @property
    def db(self) -> Any:
        """The connection of this process (opened after any fork, never inherited)."""
        return self._db.get()

    def _connect(self) -> Any:
        import lancedb

        self.path.mkdir(parents=True, exist_ok=True)
        self._tables = {}  # handles of another process's connection
        return lancedb.connect(str(self.path), read_consistency_interval=self.read_consistency)

    def _table(self, namespace: str) -> Any | None:
        db = self.db  # first: a new process drops the handles it inherited
        name = table_name(namespace)
        table = self._tables.get(name)
        if table is not None:
            return table
        try:
            table = self._guard(lambda: db.open_table(name))
        except BackendRejected:
            return None  # "Table ... was not found": nothing indexed for this namespace yet
        self._tables[name] = table
        return table

    def _forget(self, namespace: str) -> None:
        self._tables.pop(table_name(namespace), None)

    def _table_names(self) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            page = self._guard(lambda t=token: self.db.list_tables(page_token=t))
            names.extend(page.tables)
            token = page.page_token
            if not token:
                return names

    @staticmethod
    def _guard(call: Callable[[], T]) -> T:
        """Map LanceDB errors: bad input (ValueError/TypeError/Arrow) is rejected, the rest is an outage."""
        try:
            return call()
        except (BackendRejected, BackendUnavailable):
            raise
        except (ValueError, TypeError, pa.ArrowInvalid) as exc:
            raise BackendRejected(f"LanceDB refused the request: {exc}") from exc
        except Exception as exc:
            raise BackendUnavailable(f"LanceDB failed: {exc}") from exc

    # --- writes (the indexer) -----------------------------------------------------------------
    def _rows(self, records: Sequence[VectorRecord], dimension: int) -> pa.Table:
        columns: dict[str, list[Any]] = {name: [] for name in schema(dimension).names}
        for record in records:
            if len(record.values) != dimension:
                raise BackendRejected(f"Vector {record.id} has {len(record.values)} dimensions, not {dimension}.")
            metadata = dict(record.metadata)
            columns["id"].append(record.id)
            columns["vector"].append([float(x) for x in record.values])
            for field, column in COLUMNS.items():
                value = metadata.pop(field, None)
                if column in STRING_COLUMNS:
                    columns[column].append("" if value is None else str(value))
                elif column == "chunk":
                    columns[column].append(None if value is None else int(value))
                else:
                    columns[column].append(None if value is None else float(value))
            columns["extra"].append(json.dumps(metadata, ensure_ascii=False) if metadata else "")
            columns[TEXT_COLUMN].append(record.text)
        return pa.table(columns, schema=schema(dimension))

    def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        table = self._table(namespace)
        dimension = table.schema.field("vector").type.list_size if table is not None else len(records[0].values)
        data = self._rows(records, dimension)
        if table is None:
            name = table_name(namespace)
            try:
                table = self._guard(lambda: self.db.create_table(name, data=data))
                self._tables[name] = table
                self._guard(lambda: self._create_text_index(table))
                return
            except BackendRejected:
                table = self._table(namespace)  # created meanwhile by another writer
                if table is None:
                    raise
        self._guard(
            lambda: table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        )

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        table = self._table(namespace)
        if table is None or not ids:
            return
        ids = list(ids)
        for start in range(0, len(ids), DELETE_BATCH):
            batch = ", ".join(_quote(i) for i in ids[start : start + DELETE_BATCH])
            self._guard(lambda b=batch: table.delete(f"id IN ({b})"))

    def delete_prefix(self, namespace: str, prefix: str) -> None:
        table = self._table(namespace)
        if table is not None:
            self._guard(lambda: table.delete(f"starts_with(id, {_quote(prefix)})"))

    def delete_namespace(self, namespace: str) -> None:
        self._guard(lambda: self.db.drop_table(table_name(namespace), ignore_missing=True))
        self._forget(namespace)

    # --- reads (web processes) ----------------------------------------------------------------
    def query(
        self,
        namespace: str,
        vector: Sequence[float],
        *,
        top_k: int = 10,
        filter: Filter | None = None,
        text: str | None = None,
    ) -> list[Match]:
        table = self._table(namespace)
        if table is None:
            return []
        try:
            return self._query(table, namespace, vector, top_k, filter, text)
        except BackendUnavailable:
            self._forget(namespace)  # the table may have been dropped and re-created: reopen once
            table = self._table(namespace)
            return self._query(table, namespace, vector, top_k, filter, text) if table is not None else []

    def _query(
        self, table: Any, namespace: str, vector: Sequence[float], top_k: int, filter: Filter | None, text: str | None
    ) -> list[Match]:
        where = to_sql(filter)
        indices = self._guard(table.list_indices)
        partitions = self._partitions(table, indices)
        query = [float(x) for x in vector]

        def semantic() -> list[dict[str, Any]]:
            search = table.search(query).distance_type("cosine").limit(top_k).select([*RESULT_COLUMNS, "_distance"])
            if partitions:
                search = search.nprobes(self.nprobes(partitions)).ef(self.ef).refine_factor(self.refine_factor)
            if where:
                search = search.where(where, prefilter=True)
            return search.to_list()

        rows = self._guard(semantic)
        scored = {row["id"]: (1.0 - float(row["_distance"]), 0.0, row) for row in rows}
        words = query_terms(text or "")
        if words and any(index.name == TEXT_INDEX for index in indices):
            keyword_rows = self._guard(lambda: self._keyword_search(table, words, top_k, where))
            best = max((float(row["_score"]) for row in keyword_rows), default=0.0)
            for row in keyword_rows:
                cosine = scored[row["id"]][0] if row["id"] in scored else float(np.dot(query, row["vector"]))
                scored[row["id"]] = (cosine, float(row["_score"]) / best if best > 0 else 0.0, row)
        weight = keyword_weight()
        matches = [
            Match(vid, fuse(cosine, keyword, weight), self._metadata(row), namespace)
            for vid, (cosine, keyword, row) in scored.items()
        ]
        matches.sort(key=lambda m: m.score, reverse=True)
        return matches[:top_k]

    @staticmethod
    def _keyword_search(table: Any, words: list[str], top_k: int, where: str | None) -> list[dict[str, Any]]:
        """BM25 over the embedded text: each term exactly, and with a few edits (typos) at half weight."""
        from lancedb.query import BooleanQuery, MatchQuery, Occur

        parts = []
        for word in words:
            parts.append((Occur.SHOULD, MatchQuery(word, TEXT_COLUMN)))
            if edits_allowed(word):
                fuzzy = MatchQuery(word, TEXT_COLUMN, fuzziness=edits_allowed(word), boost=0.5, prefix_length=1)
                parts.append((Occur.SHOULD, fuzzy))
        search = table.search(BooleanQuery(parts), query_type="fts").limit(top_k)
        search = search.select([*RESULT_COLUMNS, "vector", "_score"])
        if where:
            search = search.where(where, prefilter=True)
        return search.to_list()

    @staticmethod
    def _create_text_index(table: Any) -> None:
        """BM25 over the embedded text; no stemming, so a term's edits are counted on the word as written."""
        from lancedb.index import FTS

        config = FTS(stem=False, remove_stop_words=True, ascii_folding=True, lower_case=True)
        table.create_index(TEXT_COLUMN, config=config, name=TEXT_INDEX, replace=True)

    @staticmethod
    def _metadata(row: dict[str, Any]) -> dict[str, Any]:
        metadata: dict[str, Any] = json.loads(row["extra"]) if row.get("extra") else {}
        for field, column in COLUMNS.items():
            value = row.get(column)
            if value not in (None, ""):
                metadata[field] = value
        return metadata

    def list_ids(self, namespace: str, prefix: str) -> list[str]:
        table = self._table(namespace)
        if table is None:
            return []
        rows = self._guard(
            lambda: table.search().where(f"starts_with(id, {_quote(prefix)})").select(["id"]).limit(None).to_arrow()
        )
        return rows.column("id").to_pylist()

    def dimension(self) -> int | None:
        for name in self._table_names():
            table = self._table(name)
            if table is not None:
                return int(table.schema.field("vector").type.list_size)
        return None

    def stats(self) -> dict[str, Any]:
        namespaces = {}
        for name in self._table_names():
            table = self._table(name)
            if table is not None:
                namespaces[name] = int(self._guard(table.count_rows))
        return {"dimension": self.dimension(), "namespaces": namespaces, "total": sum(namespaces.values())}

    def ping(self) -> dict[str, Any]:
        page = self._guard(lambda: self.db.list_tables(limit=1000))
        return {"ok": True, "backend": "lancedb", "path": str(self.path), "tables": len(page.tables)}

    def nprobes(self, partitions: int) -> int:
        """IVF partitions searched per query: a fraction of them (measured in bench/search.py)."""
        return max(1, min(partitions, math.ceil(partitions * self.probe_fraction)))

    # --- upkeep (the indexer) -----------------------------------------------------------------
    @staticmethod
    def _partitions(table: Any, indices: Sequence[Any] | None = None) -> int:
        """Partitions of the table's ANN index (0 = none yet: exact search)."""
        for index in table.list_indices() if indices is None else indices:
            if index.name.startswith(VECTOR_INDEX_PREFIX):
                return int(index.name[len(VECTOR_INDEX_PREFIX) :])
        return 0

    def maintain(self, namespaces: Iterable[str] | None = None) -> None:
        names = [table_name(n) for n in namespaces] if namespaces is not None else self._table_names()
        for name in names:
            table = self._table(name)
            if table is not None:
                self._retry(lambda t=table: self.maintain_table(t), f"maintain {name}")

    def maintain_table(self, table: Any) -> None:
        from lancedb.index import BTree, IvfHnswSq

        rows = table.count_rows()
        indices = {index.name for index in table.list_indices()}
        if TEXT_INDEX not in indices:
            self._create_text_index(table)
        if rows >= self.id_index_min_rows and ID_INDEX not in indices:
            table.create_index("id", config=BTree(), name=ID_INDEX)  # merge_insert and deletes by id
        current = self._partitions(table)
        wanted = max(1, min(self.max_partitions, rows // self.partition_rows))
        if rows >= self.ann_min_rows and (current == 0 or wanted >= 2 * current):
            started = time.monotonic()
            config = IvfHnswSq(distance_type="cosine", num_partitions=wanted, ef_construction=self.ef_construction)
            table.create_index("vector", config=config, name=f"{VECTOR_INDEX_PREFIX}{wanted}")
            if current:
                table.drop_index(f"{VECTOR_INDEX_PREFIX}{current}")
            logger.info(
                "built ANN index on %s: %d rows, %d partitions, %.1fs",
                table.name,
                rows,
                wanted,
                time.monotonic() - started,
            )
        table.optimize(cleanup_older_than=self.keep_versions)

    def _retry(self, call: Callable[[], None], what: str) -> None:
        """Compaction can lose a commit race ("Retryable commit conflict"): try again with backoff."""
        for attempt in range(self.maintenance_retries):
            try:
                call()
                return
            except Exception as exc:
                if attempt == self.maintenance_retries - 1:
                    raise BackendUnavailable(f"LanceDB {what} failed: {exc}") from exc
                logger.warning("LanceDB %s failed (attempt %d), retrying: %s", what, attempt + 1, exc)
                time.sleep(0.2 * 2**attempt)
