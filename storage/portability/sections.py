"""Export and import in a versioned JSON Lines format (backup, restore, a user's data export),
and a checker that compares two prefixes, or an export against Redis, key by key.

An export is a directory: ``manifest.json`` (format, version, scope, and per file its record
count and SHA-256) plus one ``<section>/<type>.jsonl`` per entity type, one JSON object per
line. Records name entities by id only, never by key, so an export is independent of the
key prefix. Timestamps are ISO-8601 UTC with microseconds (exact). The manifest is written
last, so a directory without one is an unfinished export and is refused.

Each app contributes a :class:`Section` (its record types, how to export one user's data,
how to import a batch, and a snapshot of one user's keys for the checker) with
:func:`register`; the storage app's own section is registered here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.utils.module_loading import autodiscover_modules

from mookti import redis as kernel_redis
from mookti.ids import now_us, rfc3339, to_us
from mookti.progress import progress as progress_bar
from mookti.redis import current_prefix, get_redis, pipeline
from storage import keys
from storage.entities import Chat, Document, Message, Stream, Suggestion, User, Vote, compact_id
from storage.managers.users import USER_TYPES, users
from storage.portability.imports import Planned, imports
from storage.portability.migration.report import ImportReport

FORMAT = "mookti-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH = 500

Emit = Callable[[str, dict[str, Any]], None]


class PortabilityError(Exception):
    """An export or import cannot go on (bad directory, manifest, options); the message says why."""


# --- timestamps ------------------------------------------------------------------------------------
def ts_out(value: int | str | None) -> str | None:
    """Microseconds as ISO-8601 UTC with all six fraction digits (exact, unlike the API's ms)."""
    if value in (None, ""):
        return None
    return rfc3339(value)


def ts_in(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC))


def ts_in_optional(value: Any) -> int | None:
    return None if value is None else ts_in(value)


# --- sections ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordType:
    """One file of a section: how a record becomes a manager item and how a batch is written."""

    name: str
    to_item: Callable[[dict[str, Any]], dict[str, Any]]
    write: Callable[..., list[str]]  # (items, dry_run=, planned=) -> outcomes
    row_key: Callable[[dict[str, Any]], str]


@dataclass
class Section:
    """What an app contributes to exports: record types in import order, and per user an
    exporter (``export_user(user_id, emit)``) and a key snapshot for the checker."""

    name: str
    version: int
    record_types: list[RecordType]
    export_user: Callable[[str, Emit], None]
    snapshot_user: Callable[[str], dict[str, Any]]


_sections: dict[str, Section] = {}
_discovered: list[bool] = []


def register(section: Section) -> None:
    """Add (or replace) an app's section; the storage section always comes first."""
    _sections[section.name] = section


def sections() -> list[Section]:
    """Every registered section; each installed app's ``portability`` module registers its own."""
    if not _discovered:
        _discovered.append(True)
        autodiscover_modules("portability")
    return list(_sections.values())


# --- reading keys for the checker ------------------------------------------------------------------
READERS: dict[str, Callable[[Any, str], Any]] = {
    "hash": lambda p, k: p.hgetall(k),
    "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
    "string": lambda p, k: p.get(k),
    "set": lambda p, k: p.smembers(k),
    "list": lambda p, k: p.lrange(k, 0, -1),
    "stream": lambda p, k: p.xlen(k),
}


def key_values(names: list[str]) -> dict[str, Any]:
    """Values of existing keys by logical name (prefix removed), whatever their type; for checkers."""
    prefix = current_prefix()
    found: dict[str, Any] = {}
    for start in range(0, len(names), BATCH):
        chunk = names[start : start + BATCH]
        pipe = pipeline()
        for name in chunk:
            pipe.type(name)
        types = pipe.execute()
        pipe = pipeline()
        present = [(name, kind) for name, kind in zip(chunk, types, strict=True) if kind in READERS]
        for name, kind in present:
            READERS[kind](pipe, name)
        for (name, kind), value in zip(present, pipe.execute(), strict=True):
            found[name.removeprefix(prefix)] = {"type": kind, "value": sorted(value) if kind == "set" else value}
    return found


def hash_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Values of fields in shared hashes (e.g. message lookups), by logical ``hash[field]``."""
    prefix = current_prefix()
    found: dict[str, Any] = {}
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start : start + BATCH]
        pipe = pipeline()
        for name, field_name in chunk:
            pipe.hget(name, field_name)
        for (name, field_name), value in zip(chunk, pipe.execute(), strict=True):
            if value is not None:
                found[f"{name.removeprefix(prefix)}[{field_name}]"] = value
    return found


def memberships(index_keys: list[str], member: str) -> dict[str, Any]:
    """Scores of ``member`` in shared indexes (e.g. ``users``), by logical ``index[member]``."""
    prefix = current_prefix()
    pipe = pipeline()
    for index in index_keys:
        pipe.zscore(index, member)
    return {
        f"{index.removeprefix(prefix)}[{member}]": score
        for index, score in zip(index_keys, pipe.execute(), strict=True)
        if score is not None
    }


# --- the storage app's section ---------------------------------------------------------------------
def _chunks(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _user_indexes(user_id: str) -> list[str]:
    pipe = pipeline()
    pipe.zrange(keys.user_chats(user_id), 0, -1)
    pipe.zrange(keys.user_chats_by_activity(user_id), 0, -1)
    pipe.zrange(keys.user_documents(user_id), 0, -1)
    by_created, by_activity, documents = pipe.execute()
    return [list(dict.fromkeys(by_created + by_activity)), documents]


def export_storage_user(user_id: str, emit: Emit) -> None:
    """One user's account, chats (messages, votes, stream ids) and documents (versions, suggestions)."""
    pipe = pipeline()
    pipe.hgetall(keys.user(user_id))
    pipe.zrange(keys.user_message_times(user_id), 0, -1, withscores=True)
    raw, times = pipe.execute()
    user = User.view(raw)
    if user is None:
        return
    chat_ids, document_ids = _user_indexes(user_id)
    emit("users", _user_record(user, raw.get("password", ""), times))
    for chunk in _chunks(chat_ids, 100):
        pipe = pipeline()
        for chat_id in chunk:
            pipe.hgetall(keys.chat(chat_id))
            pipe.zrange(keys.chat_messages(chat_id), 0, -1)
            pipe.hgetall(keys.chat_votes(chat_id))
            pipe.zrange(keys.chat_streams(chat_id), 0, -1, withscores=True)
        replies = pipe.execute()
        for n, chat_id in enumerate(chunk):
            raw_chat, message_ids, votes, streams = replies[4 * n : 4 * n + 4]
            chat = Chat.view(raw_chat)
            if chat is None or chat["userId"] != user_id:
                continue
            emit(
                "chats",
                {**chat, "createdAt": ts_out(chat["createdAt"]), "lastMessageAt": ts_out(chat["lastMessageAt"])},
            )
            for ids in _chunks(message_ids):
                values = get_redis().hmget(keys.chat_message_data(chat_id), ids)
                found = (Message.stored(chat_id, m, value) for m, value in zip(ids, values, strict=True))
                for message in filter(None, found):
                    emit("messages", {**message, "createdAt": ts_out(message["createdAt"])})
            for message_id, value in sorted(votes.items()):
                emit("votes", Vote.from_field(chat_id, message_id, value).to_dict())
            for stream_id, score in streams:
                emit("streams", {**Stream(stream_id, chat_id, int(score)).to_dict(), "createdAt": ts_out(int(score))})
    for document_id in document_ids:
        pipe = pipeline()
        pipe.hget(keys.document(document_id), "userId")
        pipe.zrange(keys.document_versions(document_id), 0, -1)
        pipe.zrange(keys.document_suggestions(document_id), 0, -1)
        owner, stamps, suggestion_ids = pipe.execute()
        if owner != user_id:
            continue
        pipe = pipeline()
        for stamp in stamps:
            pipe.hgetall(keys.document_version(document_id, int(stamp)))
        for suggestion_id in suggestion_ids:
            pipe.hgetall(keys.document_suggestion(document_id, suggestion_id))
        replies = pipe.execute()
        for version in filter(None, map(Document.view, replies[: len(stamps)])):
            emit("documents", {**version, "createdAt": ts_out(version["createdAt"])})
        for suggestion in filter(None, map(Suggestion.view, replies[len(stamps) :])):
            emit(
                "suggestions",
                {
                    **suggestion,
                    "documentCreatedAt": ts_out(suggestion["documentCreatedAt"]),
                    "createdAt": ts_out(suggestion["createdAt"]),
                },
            )


def _user_record(user: dict[str, Any], password: str, times: list[tuple[str, float]]) -> dict[str, Any]:
    recent = []
    for member, score in times:  # a message id; ``chatId/messageId`` before issue 13
        recent.append({"messageId": member.rpartition("/")[2], "createdAt": ts_out(int(score))})
    return {**user, "createdAt": ts_out(user["createdAt"]), "passwordHash": password, "messageTimes": recent}


def _user_item(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "email": record["email"],
        "password": record.get("passwordHash") or "",
        "name": record.get("name", ""),
        "type": record.get("type", "free"),
        "isGuest": bool(record.get("isGuest")),
        "timezone": record.get("timezone", "UTC"),
        "preferences": record.get("preferences") or {},
        "createdAt": ts_in(record["createdAt"]),
        "messageTimes": [(t["messageId"], ts_in(t["createdAt"])) for t in record.get("messageTimes") or []],
    }


def _times(record: dict[str, Any], *names: str) -> dict[str, Any]:
    item = dict(record)
    for name in names:
        item[name] = ts_in_optional(record.get(name)) if name == "lastMessageAt" else ts_in(record[name])
    return item


def snapshot_storage_user(user_id: str) -> dict[str, Any]:
    """Every storage key that belongs to the user, plus their entries in the shared indexes."""
    raw = users.get(user_id) or {}
    chat_ids, document_ids = _user_indexes(user_id)
    names = [
        keys.user(user_id),
        keys.user_chats(user_id),
        keys.user_chats_by_activity(user_id),
        keys.user_message_times(user_id),
        keys.user_documents(user_id),
    ]
    message_fields: list[tuple[str, str]] = []
    if raw.get("email"):
        names.append(keys.user_email(raw["email"]))
    for chunk in _chunks(chat_ids):
        pipe = pipeline()
        for chat_id in chunk:
            pipe.zrange(keys.chat_messages(chat_id), 0, -1)
        for chat_id, message_ids in zip(chunk, pipe.execute(), strict=True):
            names += [keys.chat(chat_id), keys.chat_messages(chat_id), keys.chat_votes(chat_id)]
            names += [keys.chat_streams(chat_id), keys.chat_message_data(chat_id)]
            message_fields += [(keys.message_lookups(m), compact_id(m)) for m in message_ids]
    for document_id in document_ids:
        pipe = pipeline()
        pipe.zrange(keys.document_versions(document_id), 0, -1)
        pipe.zrange(keys.document_suggestions(document_id), 0, -1)
        stamps, suggestion_ids = pipe.execute()
        names += [keys.document(document_id), keys.document_versions(document_id)]
        names.append(keys.document_suggestions(document_id))
        names += [keys.document_version(document_id, int(s)) for s in stamps]
        names += [keys.document_suggestion(document_id, s) for s in suggestion_ids]
    found = key_values(names)
    found.update(memberships([keys.users(), *(keys.users_by_type(t) for t in USER_TYPES)], user_id))
    found.update(hash_fields(message_fields))
    return found


def _write(method: str, **fixed: Any) -> Callable[..., list[str]]:
    return lambda items, **kwargs: getattr(imports, method)(items, **fixed, **kwargs)


STORAGE = Section(
    name="storage",
    version=1,
    record_types=[
        RecordType("users", _user_item, _write("users"), lambda r: r["id"]),
        RecordType("chats", lambda r: _times(r, "createdAt", "lastMessageAt"), _write("chats"), lambda r: r["id"]),
        RecordType(
            "messages",
            lambda r: _times(r, "createdAt"),
            _write("messages", record_times=False),
            lambda r: f"{r['chatId']}/{r['id']}",
        ),
        RecordType("votes", dict, _write("votes"), lambda r: f"{r['chatId']}/{r['messageId']}"),
        RecordType("streams", lambda r: _times(r, "createdAt"), _write("streams"), lambda r: r["id"]),
        RecordType(
            "documents",
            lambda r: _times(r, "createdAt"),
            _write("document_versions"),
            lambda r: f"{r['id']}@{r['createdAt']}",
        ),
        RecordType(
            "suggestions",
            lambda r: _times(r, "documentCreatedAt", "createdAt"),
            _write("suggestions"),
            lambda r: r["id"],
        ),
    ],
    export_user=export_storage_user,
    snapshot_user=snapshot_storage_user,
)
register(STORAGE)


# --- export ----------------------------------------------------------------------------------------
class _Files:
    """Open ``<section>/<type>.jsonl`` files lazily; count records and hash them as they are written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.open: dict[tuple[str, str], tuple[IO[str], Any]] = {}
        self.counts: dict[tuple[str, str], int] = {}

    def emitter(self, section: Section) -> Emit:
        def emit(record_type: str, record: dict[str, Any]) -> None:
            slot = (section.name, record_type)
            if slot not in self.open:
                (self.root / section.name).mkdir(exist_ok=True)
                handle = open(self.root / section.name / f"{record_type}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
                self.open[slot] = (handle, hashlib.sha256())
                self.counts[slot] = 0
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            handle, digest = self.open[slot]
            handle.write(line)
            digest.update(line.encode())
            self.counts[slot] += 1

        return emit

    def close(self) -> dict[str, dict[str, Any]]:
        described: dict[str, dict[str, Any]] = {}
        for (section, record_type), (handle, digest) in self.open.items():
            handle.close()
            described.setdefault(section, {})[record_type] = {
                "path": f"{section}/{record_type}.jsonl",
                "records": self.counts[(section, record_type)],
                "sha256": digest.hexdigest(),
            }
        return described


def _show(progress: bool | None) -> bool:
    return progress if progress is not None else sys.stderr.isatty()


def export_data(output: Path, user_id: str | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Write an export of every user (or one) to ``output`` (new or empty); returns the manifest."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise PortabilityError(f"{output} exists and is not an empty directory; give a new one.")
    if user_id is not None and users.get(user_id) is None:
        raise PortabilityError(f"No user with id {user_id!r}.")
    output.mkdir(parents=True, exist_ok=True)
    files = _Files(output)
    emitters = [(section, files.emitter(section)) for section in sections()]
    user_ids = [user_id] if user_id else users.all_ids()
    total = 1 if user_id else users.count()
    exported = 0
    try:
        with progress_bar(total=total, desc="users", unit="user", enabled=_show(progress)) as bar:
            for uid in user_ids:
                for section, emit in emitters:
                    section.export_user(uid, emit)
                exported += 1
                bar.update(1)
    finally:
        described = files.close()
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exportedAt": ts_out(now_us()),
        "scope": {"userId": user_id} if user_id else {"all": True},
        "users": exported,
        "sections": {s.name: {"version": s.version, "files": described.get(s.name, {})} for s in sections()},
    }
    temporary = output / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, output / MANIFEST)
    return manifest


# --- import ----------------------------------------------------------------------------------------
def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest, checked: format, version, and every file's record count and SHA-256."""
    path = Path(source) / MANIFEST
    if not Path(source).is_dir():
        raise PortabilityError(f"{source} is not a directory.")
    if not path.is_file():
        raise PortabilityError(f"{source} has no {MANIFEST}: not an export, or an unfinished one.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PortabilityError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PortabilityError(f"{path} is not a {FORMAT} manifest.")
    if manifest.get("version") != FORMAT_VERSION:
        raise PortabilityError(
            f"Export format version {manifest.get('version')!r}; this version reads version {FORMAT_VERSION}."
        )
    for section, described in (manifest.get("sections") or {}).items():
        for record_type, info in (described.get("files") or {}).items():
            file = Path(source) / info["path"]
            if not file.is_file():
                raise PortabilityError(f"{file} is missing ({section} {record_type}).")
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            if digest != info["sha256"]:
                raise PortabilityError(f"{file} does not match its checksum in the manifest (changed or truncated).")
    return manifest


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
            except ValueError as exc:
                yield number, None, f"invalid JSON: {exc}"
                continue
            yield number, record, None if isinstance(record, dict) else "invalid record: not an object"


def import_data(
    source: Path,
    *,
    dry_run: bool = False,
    progress: bool | None = None,
    report_file: IO[str] | None = None,
) -> ImportReport:
    """Import an export through the managers: existing entities are kept and counted, never overwritten."""
    source = Path(source)
    manifest = read_manifest(source)
    report = ImportReport(dry_run=dry_run)
    planned = Planned() if dry_run else None
    described = manifest.get("sections") or {}
    for name in described:
        if name not in {s.name for s in sections()}:
            report.notes.append(f"section {name!r} is not known to this deployment: not imported")
    for section in sections():
        if section.name not in described:
            continue
        if described[section.name].get("version", 1) > section.version:
            raise PortabilityError(f"Section {section.name!r} of the export is newer than this deployment reads.")
        files = described[section.name].get("files") or {}
        for record_type in section.record_types:
            if record_type.name not in files:
                continue
            info = files[record_type.name]
            table = report.table(f"{section.name}/{record_type.name}")
            with progress_bar(total=info["records"], desc=record_type.name, unit="rec", enabled=_show(progress)) as bar:
                batch: list[tuple[str, dict[str, Any]]] = []
                for number, record, problem in _records(source / info["path"]):
                    table.read += 1
                    item, row_key = None, f"line {number}"
                    if problem is None:
                        try:
                            row_key = record_type.row_key(record)  # type: ignore[arg-type]
                            item = record_type.to_item(record)  # type: ignore[arg-type]
                        except (KeyError, TypeError, ValueError) as exc:
                            problem = f"invalid record: {type(exc).__name__} {exc}"
                    if problem is not None:
                        table.add(row_key, problem, report_file)
                        continue
                    batch.append((row_key, item))  # type: ignore[arg-type]
                    if len(batch) >= BATCH:
                        _flush(record_type, batch, table, dry_run, planned, report_file)
                        bar.update(len(batch))
                        batch = []
                _flush(record_type, batch, table, dry_run, planned, report_file)
                bar.update(len(batch))
    return report


def _flush(record_type: RecordType, batch, table, dry_run: bool, planned, report_file) -> None:
    if not batch:
        return
    outcomes = record_type.write([item for _, item in batch], dry_run=dry_run, planned=planned)
    for (row_key, _), outcome in zip(batch, outcomes, strict=True):
        table.add(row_key, outcome, report_file)


# --- checker ---------------------------------------------------------------------------------------
@contextmanager
def using_prefix(prefix: str) -> Iterator[None]:
    """Compute key names under another prefix for a while (maintenance commands and tests)."""
    if "{" in prefix or "}" in prefix:
        raise PortabilityError("A key prefix must not contain braces.")
    with kernel_redis.using_prefix(prefix):
        yield


def snapshot(user_ids: list[str]) -> dict[str, Any]:
    """Every section's keys of these users under the current prefix, by logical name."""
    found: dict[str, Any] = {}
    for user_id in user_ids:
        for section in sections():
            found.update(section.snapshot_user(user_id))
    return found


def _users_in(prefix: str) -> list[str]:
    with using_prefix(prefix):
        return list(users.all_ids())


def compare_prefixes(first: str, second: str, user_ids: list[str] | None = None) -> list[str]:
    """Differences between two prefixes, entity by entity and index by index ([] when identical)."""
    if user_ids is None:
        user_ids = sorted(set(_users_in(first)) | set(_users_in(second)))
    with using_prefix(first):
        a = snapshot(user_ids)
    with using_prefix(second):
        b = snapshot(user_ids)
    differences = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            differences.append(f"{name}: only in {first}")
        elif name not in a:
            differences.append(f"{name}: only in {second}")
        elif a[name] != b[name]:
            differences.append(f"{name}: differs ({_describe(a[name], b[name])})")
    return differences


def _describe(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict) and isinstance(a.get("value"), dict):
        left, right = a["value"], b.get("value") or {}
        fields = sorted(f for f in set(left) | set(right) if left.get(f) != right.get(f))
        return "fields " + ", ".join(fields)
    return f"{str(a)[:80]} vs {str(b)[:80]}"


def check_export(source: Path, progress: bool | None = None) -> list[str]:
    """Compare an export with Redis: load it into a scratch prefix, compare its users, remove it."""
    manifest = read_manifest(source)
    users_file = (((manifest.get("sections") or {}).get("storage") or {}).get("files") or {}).get("users")
    user_ids = [r["id"] for _, r, _ in _records(Path(source) / users_file["path"]) if r] if users_file else []
    live = current_prefix()
    scratch = f"mookti-check:{uuid.uuid4().hex[:12]}:"
    try:
        with using_prefix(scratch):
            import_data(source, progress=progress)
        return compare_prefixes(scratch, live, user_ids)
    finally:
        kernel_redis.delete_prefix(scratch)
