"""Shared learning content: read from files, kept in Redis, chunked and embedded into a learning namespace.

``manage.py load_learning <folder or file>`` reads Markdown, text, PDF and JSON-lines files
(:func:`read_items`), and :func:`load` upserts each item whose content changed (by content hash,
so a second run embeds nothing), and with ``sync`` removes the items the source no longer has.
Items are kept in Redis (search's key ``learning:{namespace}:items``: hash, title, source, text),
so ``reindex --learning`` rebuilds the namespace without the files, as the rest of the store is
rebuilt from Redis. Records: ``learn:{item}#{chunk}`` with ``kind`` learning, ``documentId`` the
item id (a hit's group), ``title``, ``source`` (the file or the id it came with), ``snippet``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mookti.redis import get_redis
from storage.search import keys
from storage.search.chunking import chunk_text
from storage.search.embeddings import Embeddings
from storage.search.vectors import VectorRecord, VectorStore, clean_metadata, search_settings, snippet

TEXT_SUFFIXES = (".md", ".markdown", ".txt", ".text", ".rst")
SUFFIXES = (*TEXT_SUFFIXES, ".pdf", ".jsonl")
HEADING = re.compile(r"^\s*#\s+(.+?)\s*#*\s*$", re.MULTILINE)
EMBED_BATCH = 256


class SourceError(ValueError):
    """A source file cannot be read (the message names it)."""


@dataclass
class Item:
    id: str
    title: str
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        body = json.dumps([self.title, self.text, self.source, self.metadata], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


def default_namespace() -> str:
    return next(iter(search_settings().get("LEARNING_NAMESPACES", [])), "learning")


def record_prefix(item_id: str) -> str:
    """Record ids of an item: a short digest of its id, so any id (a path, a URL) is usable."""
    return f"learn:{hashlib.sha256(item_id.encode('utf-8')).hexdigest()[:24]}#"


# --- reading the source ------------------------------------------------------------------------
def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    try:
        return "\n\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    except Exception as exc:
        raise SourceError(f"{path}: not a readable PDF ({exc})") from exc


def _jsonl_items(path: Path, source: str) -> Iterator[Item]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{source}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise SourceError(f"{source}:{number}: each line needs a non-empty string 'text'")
        item_id = str(row.get("id") or f"{source}:{number}")
        extra = {k: v for k, v in row.items() if k not in ("id", "title", "text", "path") and isinstance(v, str)}
        yield Item(item_id, str(row.get("title") or item_id), row["text"], str(row.get("path") or item_id), extra)


def read_file(path: Path, root: Path) -> Iterator[Item]:
    source = path.relative_to(root).as_posix() if path != root else path.name
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_items(path, source)
        return
    try:
        text = _pdf_text(path) if suffix == ".pdf" else path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{source}: not UTF-8 text") from exc
    if not text.strip():
        return
    heading = HEADING.search(text) if suffix in (".md", ".markdown") else None
    title = heading.group(1) if heading else path.stem.replace("_", " ").replace("-", " ")
    yield Item(source, title, text, source)


def read_items(path: Path) -> list[Item]:
    """Every item of a file or of the supported files under a folder (sorted, so runs are repeatable)."""
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_file():
        return list(read_file(path, path))
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    items = [item for file in files for item in read_file(file, path)]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise SourceError(f"item id {item.id!r} appears twice")
        seen.add(item.id)
    return items


# --- loading -----------------------------------------------------------------------------------
def stored_items(namespace: str) -> dict[str, dict[str, Any]]:
    raw = get_redis().hgetall(keys.learning_items(namespace))
    return {item_id: json.loads(value) for item_id, value in raw.items()}


def _records(item: Item, now: float) -> list[tuple[str, str, dict[str, Any]]]:
    options = search_settings()
    chunks = chunk_text(item.text, options.get("CHUNK_CHARS", 1000), options.get("CHUNK_OVERLAP", 150))
    prefix = record_prefix(item.id)
    records = []
    for number, chunk in enumerate(chunks):
        metadata = {
            **item.metadata,
            "kind": "learning",
            "documentId": item.id[:500],
            "chunk": number,
            "title": item.title,
            "source": item.source[:500],
            "createdAt": now,
            "snippet": snippet(chunk),
        }
        records.append((f"{prefix}{number}", f"{item.title}\n\n{chunk}", clean_metadata(metadata)))
    return records


def upsert_items(
    embeddings: Embeddings,
    store: VectorStore,
    namespace: str,
    items: Sequence[Item],
    previous: dict[str, dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Embed and upsert these items (a batch of texts at a time), drop chunks they no longer have,
    and record them in Redis once their records are written."""
    now = round(time.time(), 3)
    pending: list[tuple[Item, list[tuple[str, str, dict[str, Any]]]]] = []

    def flush() -> None:
        rows = [row for _, records in pending for row in records]
        vectors = embeddings.embed([text for _, text, _ in rows]) if rows else []
        store.upsert(namespace, [VectorRecord(i, v, m, t) for (i, t, m), v in zip(rows, vectors, strict=True)])
        stale = [
            f"{record_prefix(item.id)}{n}"
            for item, records in pending
            for n in range(len(records), int(previous.get(item.id, {}).get("chunks", 0)))
        ]
        if stale:
            store.delete(namespace, stale)
        entries = {
            item.id: json.dumps(
                {
                    "hash": item.digest,
                    "title": item.title,
                    "source": item.source,
                    "text": item.text,
                    "metadata": item.metadata,
                    "chunks": len(records),
                },
                ensure_ascii=False,
            )
            for item, records in pending
        }
        if entries:
            get_redis().hset(keys.learning_items(namespace), mapping=entries)
        if progress:
            progress(len(pending))
        pending.clear()

    size = 0
    for item in items:
        records = _records(item, now)
        pending.append((item, records))
        size += len(records)
        if size >= EMBED_BATCH:
            flush()
            size = 0
    flush()


def load(
    embeddings: Embeddings,
    store: VectorStore,
    namespace: str,
    items: Sequence[Item],
    *,
    sync: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Upsert the items whose content changed; with ``sync`` remove the stored ones not in ``items``."""
    previous = stored_items(namespace)
    changed = [item for item in items if previous.get(item.id, {}).get("hash") != item.digest]
    upsert_items(embeddings, store, namespace, changed, previous, progress)
    removed = 0
    if sync:
        wanted = {item.id for item in items}
        for item_id in sorted(set(previous) - wanted):
            store.delete_prefix(namespace, record_prefix(item_id))
            get_redis().hdel(keys.learning_items(namespace), item_id)
            removed += 1
    return {"items": len(items), "embedded": len(changed), "unchanged": len(items) - len(changed), "removed": removed}


def rebuild(
    embeddings: Embeddings, store: VectorStore, namespace: str, progress: Callable[[int], None] | None = None
) -> int:
    """Drop the namespace and embed every stored item again (``reindex --learning``)."""
    stored = stored_items(namespace)
    items = [
        Item(item_id, s["title"], s["text"], s["source"], s.get("metadata") or {}) for item_id, s in stored.items()
    ]
    store.delete_namespace(namespace)
    upsert_items(embeddings, store, namespace, items, {}, progress)
    return len(items)


def learning_namespaces_with_items() -> list[str]:
    """Learning namespaces that hold loaded items (configured ones first)."""
    configured = list(search_settings().get("LEARNING_NAMESPACES", []))
    return [ns for ns in configured if get_redis().exists(keys.learning_items(ns))]
