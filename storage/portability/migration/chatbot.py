"""Import an ai-chatbot (Vercel, Drizzle) Postgres database into Redis, through the managers.

Tables are read in dependency order (users, chats, messages, votes, documents, suggestions,
streams) with server-side cursors inside one read-only REPEATABLE READ transaction (one
consistent snapshot), in batches ordered by primary key. After each batch the last key is
saved as a checkpoint in Redis, so an interrupted run resumes where it stopped; a run that
completes removes its checkpoint. Writes go through :mod:`storage.portability.imports`, which
keeps ids and timestamps, never overwrites, and reports why a row was skipped, so running
the import twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from mookti.ids import now_us, to_us
from mookti.progress import progress as progress_bar
from mookti.redis import get_redis
from storage.managers.users import normalize_email
from storage.portability import keys
from storage.portability.imports import Planned, imports
from storage.portability.migration.legacy import convert_chat
from storage.portability.migration.report import ImportReport, TableReport

GUEST_EMAIL = re.compile(r"^guest-\d+$")
BCRYPT_HASH = re.compile(r"^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$")
ALREADY_CONVERTED = "already converted to Message_v2 by ai-chatbot"
MERGED_USER = "merged into the account with the same email"


class ImportAborted(Exception):
    """The import cannot start (bad source, schema, or options); the message says why."""


@dataclass(frozen=True)
class Table:
    """How one ai-chatbot table is read: columns, order, checkpoint columns, ``--since`` column."""

    name: str
    select: str
    order: tuple[str, ...]
    checkpoint: tuple[str, ...]
    since: str | None = "createdAt"
    required: bool = False
    needs: tuple[str, ...] = ()


FIRST_SEEN = """
    SELECT u."id", u."email", u."password", f."firstSeen" FROM "User" u LEFT JOIN (
        SELECT "userId", min("createdAt") AS "firstSeen" FROM (
            SELECT "userId", "createdAt" FROM "Chat" UNION ALL SELECT "userId", "createdAt" FROM "Document"
        ) a GROUP BY "userId"
    ) f ON f."userId" = u."id"
"""

# Accounts whose emails differ only in case or surrounding space (one account here: emails are
# normalized), with what decides which one stays: the one that owns data, then one with a password.
SAME_EMAIL = f"""
    SELECT "id", "email", "firstSeen" IS NOT NULL AS "ownsData", "password" IS NOT NULL AS "hasPassword"
    FROM ({FIRST_SEEN}) u
    WHERE lower(trim("email")) IN (SELECT lower(trim("email")) FROM "User" GROUP BY 1 HAVING count(*) > 1)
"""

TABLES = (
    Table("User", FIRST_SEEN, ("id",), ("id",), since=None, required=True),
    Table(
        "Chat", 'SELECT "id", "userId", "title", "visibility", "createdAt" FROM "Chat"', ("id",), ("id",), required=True
    ),
    Table(
        "Message_v2",
        'SELECT "id", "chatId", "role", "parts", "attachments", "createdAt" FROM "Message_v2"',
        ("chatId", "id"),
        ("chatId", "id"),
    ),
    # a chat's legacy rows are converted together (turns), so batches end at a chat boundary
    Table(
        "Message",
        'SELECT "id", "chatId", "role", "content", "createdAt" FROM "Message"',
        ("chatId", "createdAt", "id"),
        ("chatId",),
    ),
    Table(
        "Vote_v2",
        'SELECT v."chatId", v."messageId", v."isUpvoted", m."createdAt" FROM "Vote_v2" v '
        'LEFT JOIN "Message_v2" m ON m."id" = v."messageId"',
        ("chatId", "messageId"),
        ("chatId", "messageId"),
        needs=("Message_v2",),
    ),
    Table(
        "Vote",
        'SELECT v."chatId", v."messageId", v."isUpvoted", m."createdAt" FROM "Vote" v '
        'LEFT JOIN "Message" m ON m."id" = v."messageId"',
        ("chatId", "messageId"),
        ("chatId", "messageId"),
        needs=("Message",),
    ),
    Table(
        "Document",
        'SELECT "id", "createdAt", "title", "content", "text" AS "kind", "userId" FROM "Document"',
        ("id", "createdAt"),
        ("id", "createdAt"),
        required=True,
    ),
    Table(
        "Suggestion",
        'SELECT "id", "documentId", "documentCreatedAt", "originalText", "suggestedText", "description", '
        '"isResolved", "userId", "createdAt" FROM "Suggestion"',
        ("id",),
        ("id",),
    ),
    Table("Stream", 'SELECT "id", "chatId", "createdAt" FROM "Stream"', ("id",), ("id",)),
)


@dataclass
class Options:
    database_url: str
    schema: str | None = None
    since: datetime | None = None
    dry_run: bool = False
    restart: bool = False
    batch_size: int = 500
    progress: bool | None = None  # None: a bar when stderr is a terminal
    report_file: IO[str] | None = None
    tables: tuple[str, ...] = field(default_factory=tuple)  # empty: all


class Checkpoint:
    """Per-table progress of an unfinished run, kept in Redis next to the data it describes."""

    def __init__(self, source: str, options_key: str, enabled: bool) -> None:
        self.key = keys.import_checkpoint(source)
        self.options_key = options_key
        self.enabled = enabled
        self.state: dict[str, str] = get_redis().hgetall(self.key) if enabled else {}

    def check_options(self, restart: bool) -> bool:
        """True when resuming; refuses to mix a checkpoint with other options."""
        if not self.state:
            return False
        if restart:
            self.clear()
            return False
        if self.state.get("_options") != self.options_key:
            raise ImportAborted(
                "An interrupted import of this database with other options (--since, tables) left a "
                "checkpoint. Run with the same options to resume, or add --restart to start over."
            )
        return True

    def last(self, table: str) -> list[Any] | None:
        value = self.state.get(table)
        return json.loads(value) if value else None

    def done(self, table: str) -> bool:
        return self.state.get(f"{table}:done") == "1"

    def save(self, table: str, last: list[Any] | None, done: bool = False) -> None:
        if not self.enabled:
            return
        fields = {"_options": self.options_key}
        if last is not None:
            fields[table] = json.dumps(last, default=str)
        if done:
            fields[f"{table}:done"] = "1"
        get_redis().hset(self.key, mapping=fields)

    def clear(self) -> None:
        get_redis().delete(self.key)
        self.state = {}


def _plain(value: Any) -> Any:
    """Postgres values as the managers want them: uuid -> str, timestamp -> microseconds."""
    if isinstance(value, datetime):
        return to_us(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _first_seen(row: dict[str, Any]) -> int:
    """User has no createdAt: a guest's email holds its creation time (``guest-<ms>``), else the
    user's oldest chat or document, else (no activity at all) the time of the import."""
    match = GUEST_EMAIL.match(row["email"] or "")
    if match:
        return int(row["email"].removeprefix("guest-")) * 1000
    return row["firstSeen"] or now_us()


def _row_key(table: Table, row: dict[str, Any]) -> str:
    return "/".join(str(row[c]) for c in table.order if c != "createdAt" or table.name == "Document")


class ChatbotImporter:
    def __init__(self, options: Options, on_batch: Callable[[str, TableReport], None] | None = None) -> None:
        self.options = options
        self.on_batch = on_batch
        self.report = ImportReport(dry_run=options.dry_run)
        self.planned = Planned() if options.dry_run else None

    # --- connection and schema -----------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.options.database_url, autocommit=False, connect_timeout=10)
        except (psycopg.Error, ValueError) as exc:
            raise ImportAborted(f"Cannot connect to PostgreSQL: {str(exc).strip()}") from None
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    def _schema(self, conn: psycopg.Connection) -> tuple[str, set[str], set[str]]:
        schema = self.options.schema or conn.execute("SELECT current_schema()").fetchone()[0]
        tables = {
            r[0]
            for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
        }
        for table in TABLES:
            if table.required and table.name not in tables:
                raise ImportAborted(
                    f'Table "{table.name}" not found in schema "{schema}": not an ai-chatbot database '
                    "(give --schema if the tables live in another schema)."
                )
        chat_columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'Chat'",
                [schema],
            )
        }
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return schema, tables, chat_columns

    def _source(self, schema: str) -> str:
        info = conninfo_to_dict(self.options.database_url)
        origin = f"{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}/{schema}"
        return hashlib.sha256(origin.encode()).hexdigest()[:16]

    # --- the run -------------------------------------------------------------------------------
    def run(self) -> ImportReport:
        with self._connect() as conn:
            schema, present, chat_columns = self._schema(conn)
            selected = [t for t in TABLES if not self.options.tables or t.name in self.options.tables]
            options_key = json.dumps([str(self.options.since), [t.name for t in selected]])
            checkpoint = Checkpoint(self._source(schema), options_key, enabled=not self.options.dry_run)
            if checkpoint.check_options(self.options.restart):
                self.report.notes.append("resumed an interrupted run from its checkpoint")
            if "lastContext" in chat_columns:
                count = conn.execute('SELECT count(*) FROM "Chat" WHERE "lastContext" IS NOT NULL').fetchone()[0]
                self.report.notes.append(f"Chat.lastContext (token usage) is not migrated ({count} chats have one)")
            self.has_v2 = "Message_v2" in present
            self.merged_into = self._same_email_accounts(conn)
            for table in selected:
                report = self.report.table(table.name)
                missing = [t for t in (table.name, *table.needs) if t not in present]
                if missing:
                    report.note = f"table {missing[0]} not present"
                elif checkpoint.done(table.name):
                    report.note = "done before the interruption"
                else:
                    self._import_table(conn, table, checkpoint, report)
            if not self.options.dry_run:
                checkpoint.clear()
        return self.report

    def _where(self, table: Table, last: list[Any] | None) -> tuple[sql.Composable, list[Any]]:
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        if last is not None:
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.checkpoint)
            marks = sql.SQL(", ").join(sql.Placeholder() * len(last))
            conditions.append(sql.SQL("({}) > ({})").format(columns, marks))
            params.extend(last)
        if self.options.since is not None and table.since:
            conditions.append(sql.SQL("{} >= %s").format(sql.Identifier(table.since)))
            params.append(self.options.since)
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
        return where, params

    def _import_table(
        self, conn: psycopg.Connection, table: Table, checkpoint: Checkpoint, report: TableReport
    ) -> None:
        last = checkpoint.last(table.name)
        where, params = self._where(table, last)
        source = sql.SQL("SELECT * FROM ({}) AS t").format(sql.SQL(table.select))
        total = conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS t").format(source + where), params).fetchone()[0]
        order = sql.SQL(" ORDER BY ") + sql.SQL(", ").join(sql.Identifier(c) for c in table.order)
        show = self.options.progress if self.options.progress is not None else sys.stderr.isatty()
        with (
            conn.cursor(name=f"import_{table.name.lower()}", row_factory=dict_row) as cursor,
            progress_bar(total=total, desc=table.name, unit="row", enabled=show) as bar,
        ):
            cursor.itersize = self.options.batch_size
            cursor.execute(source + where + order, params)
            for batch in self._batches(cursor, table):
                self._import_batch(conn, table, batch, report)
                checkpoint.save(table.name, [batch[-1][c] for c in table.checkpoint])
                bar.update(len(batch))
                if self.on_batch:
                    self.on_batch(table.name, report)
        checkpoint.save(table.name, None, done=True)

    def _batches(self, cursor: psycopg.Cursor, table: Table) -> Iterator[list[dict[str, Any]]]:
        """Rows in batches; a batch ends only where the checkpoint columns change."""
        batch: list[dict[str, Any]] = []
        for row in cursor:
            if len(batch) >= self.options.batch_size and [row[c] for c in table.checkpoint] != [
                batch[-1][c] for c in table.checkpoint
            ]:
                yield batch
                batch = []
            batch.append(row)
        if batch:
            yield batch

    # --- tables --------------------------------------------------------------------------------
    def _import_batch(
        self, conn: psycopg.Connection, table: Table, rows: list[dict[str, Any]], report: TableReport
    ) -> None:
        report.read += len(rows)
        plain = [{k: _plain(v) for k, v in row.items()} for row in rows]
        handler = getattr(self, f"_rows_{table.name.lower()}")
        outcomes = handler(conn, plain)
        for row, outcome in zip(plain, outcomes, strict=True):
            report.add(_row_key(table, row), outcome, self.options.report_file)

    def _same_email_accounts(self, conn: psycopg.Connection) -> dict[str, str]:
        """Which account each case-only duplicate merges into (with a report note per merge), so
        no chat or document is dropped because its owner's email collides with another's."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in conn.cursor(row_factory=dict_row).execute(SAME_EMAIL):
            groups.setdefault(normalize_email(row["email"]), []).append({k: _plain(v) for k, v in row.items()})
        merged_into: dict[str, str] = {}
        for accounts in groups.values():
            kept, *others = sorted(accounts, key=lambda a: (not a["ownsData"], not a["hasPassword"], a["id"]))
            for other in others:
                merged_into[other["id"]] = kept["id"]
                self.report.notes.append(
                    f"user {other['id']} ({other['email']}) merged into user {kept['id']} ({kept['email']}):"
                    " their emails differ only in case"
                )
        return merged_into

    def _owned(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with ``userId`` moved to the account a merged user went into."""
        return [{**row, "userId": self.merged_into.get(row["userId"], row["userId"])} for row in rows]

    def _write(self, method: str, items: list[dict[str, Any]], **kwargs: Any) -> list[str]:
        return getattr(imports, method)(items, dry_run=self.options.dry_run, planned=self.planned, **kwargs)

    def _rows_user(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        items = [
            {
                "id": row["id"],
                "email": row["email"] or "",
                "password": f"bcrypt${row['password']}" if BCRYPT_HASH.match(row["password"] or "") else "",
                "isGuest": bool(GUEST_EMAIL.match(row["email"] or "")),
                "createdAt": _first_seen(row),
            }
            for row in rows
            if row["id"] not in self.merged_into
        ]
        written = iter(self._write("users", items, compare=("email", "password", "isGuest")))
        return [
            f"{MERGED_USER}: {self.merged_into[row['id']]}" if row["id"] in self.merged_into else next(written)
            for row in rows
        ]

    def _rows_chat(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        return self._write("chats", self._owned(rows))

    def _rows_message_v2(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        return self._write("messages", [dict(row) for row in rows])

    def _chats_with_v2(self, conn: psycopg.Connection, chat_ids: list[str]) -> set[str]:
        if not self.has_v2 or not chat_ids:
            return set()
        found = conn.execute('SELECT DISTINCT "chatId" FROM "Message_v2" WHERE "chatId" = ANY(%s::uuid[])', [chat_ids])
        return {str(r[0]) for r in found}

    def _rows_message(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        """Legacy rows: a chat that has Message_v2 rows was converted by ai-chatbot already."""
        converted_chats = self._chats_with_v2(conn, list(dict.fromkeys(r["chatId"] for r in rows)))
        by_chat: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_chat.setdefault(row["chatId"], []).append(row)
        outcome_of: dict[int, str] = {}
        messages, sources = [], []
        for chat_id, chat_rows in by_chat.items():
            if chat_id in converted_chats:
                outcome_of.update({id(r): ALREADY_CONVERTED for r in chat_rows})
                continue
            for converted in convert_chat(chat_rows):
                if converted.message is None:
                    outcome_of[id(converted.row)] = converted.outcome  # type: ignore[assignment]
                else:
                    messages.append(converted.message)
                    sources.append(converted.row)
        for row, outcome in zip(sources, self._write("messages", messages), strict=True):
            outcome_of[id(row)] = outcome
        return [outcome_of[id(row)] for row in rows]

    def _votes(self, conn: psycopg.Connection, rows: list[dict[str, Any]], legacy: bool) -> list[str]:
        converted_chats = self._chats_with_v2(conn, list(dict.fromkeys(r["chatId"] for r in rows))) if legacy else set()
        keep = [row for row in rows if row["chatId"] not in converted_chats]
        items = [{"chatId": r["chatId"], "messageId": r["messageId"], "isUpvoted": r["isUpvoted"]} for r in keep]
        outcome_of = {id(row): outcome for row, outcome in zip(keep, self._write("votes", items), strict=True)}
        return [outcome_of.get(id(row), ALREADY_CONVERTED) for row in rows]

    def _rows_vote_v2(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        return self._votes(conn, rows, legacy=False)

    def _rows_vote(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        return self._votes(conn, rows, legacy=True)

    def _rows_document(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        return self._write("document_versions", self._owned(rows))

    def _rows_suggestion(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        return self._write("suggestions", self._owned(rows))

    def _rows_stream(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[str]:
        return self._write("streams", [dict(row) for row in rows])


def import_chatbot(options: Options, on_batch: Callable[[str, TableReport], None] | None = None) -> ImportReport:
    return ChatbotImporter(options, on_batch).run()
