"""``manage.py import_chatbot --database-url postgresql://...``: ai-chatbot's Postgres into Redis.

Idempotent (a second run writes nothing), resumable (a checkpoint per table in Redis), with
a progress bar per table, ``--dry-run`` and ``--since``. See ``storage.portability.migration.chatbot``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from storage.portability.migration.chatbot import TABLES, ImportAborted, Options, import_chatbot


def parse_since(value: str) -> datetime:
    """An ISO-8601 date or time; without an offset it is UTC. Returned naive UTC (Postgres ``timestamp``)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--since: {value!r} is not an ISO-8601 date or time (e.g. 2025-06-01T00:00:00Z).") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


class Command(BaseCommand):
    help = "Import users, chats, messages, votes, documents, suggestions and stream ids from ai-chatbot's Postgres."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database-url",
            default=os.environ.get("POSTGRES_URL", ""),
            help="postgresql://user:password@host:5432/db (default: $POSTGRES_URL, as ai-chatbot)",
        )
        parser.add_argument("--schema", help="Postgres schema holding the tables (default: the connection's)")
        parser.add_argument("--since", help="only rows created at or after this ISO-8601 time (users: all)")
        parser.add_argument("--dry-run", action="store_true", help="read and check everything, write nothing")
        parser.add_argument("--restart", action="store_true", help="ignore the checkpoint of an interrupted run")
        parser.add_argument("--batch-size", type=int, default=500, help="rows per batch (default 500)")
        parser.add_argument(
            "--table", action="append", default=[], choices=[t.name for t in TABLES], help="only this table (repeat)"
        )
        parser.add_argument("--report", help="write every skipped row with its reason to this JSON Lines file")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["database_url"]:
            raise CommandError("Give --database-url postgresql://... (or set POSTGRES_URL).")
        if not 1 <= opts["batch_size"] <= 10_000:
            raise CommandError("--batch-size must be between 1 and 10000.")
        options = Options(
            database_url=opts["database_url"],
            schema=opts["schema"],
            since=parse_since(opts["since"]) if opts["since"] else None,
            dry_run=opts["dry_run"],
            restart=opts["restart"],
            batch_size=opts["batch_size"],
            progress=False if opts["no_progress"] else None,
            tables=tuple(opts["table"]),
        )
        try:
            report_file = open(opts["report"], "w", encoding="utf-8") if opts["report"] else None  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"--report: cannot write {opts['report']}: {exc.strerror}") from None
        options.report_file = report_file
        try:
            report = import_chatbot(options)
        except ImportAborted as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted. Progress is checkpointed per batch: run the same command again to resume.",
                returncode=130,
            ) from None
        except psycopg.Error as exc:
            raise CommandError(f"PostgreSQL error: {str(exc).strip()}. Run the same command again to resume.") from None
        except redis.RedisError as exc:
            raise CommandError(f"Redis error: {exc}. Run the same command again to resume.") from None
        finally:
            if report_file:
                report_file.close()
        for line in report.lines():
            self.stdout.write(line)
        totals = report.tables.values()
        verb = "would write" if options.dry_run else "wrote"
        self.stdout.write(
            f"{'Dry run: ' if options.dry_run else ''}read {sum(t.read for t in totals)} rows, "
            f"{verb} {sum(t.written for t in totals)}, skipped {sum(sum(t.skipped.values()) for t in totals)} "
            f"({report.problems} problems)."
        )
