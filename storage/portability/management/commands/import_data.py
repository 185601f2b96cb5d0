"""``manage.py import_data DIR``: restore an ``export_data`` directory through the managers.

Existing entities are kept (counted as ``exists``), never overwritten, so an import can be
repeated. ``--check`` only compares the export with Redis (key by key) and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from storage.portability.sections import PortabilityError, check_export, import_data


class Command(BaseCommand):
    help = "Import (restore) an export directory written by export_data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", help="the export directory (with manifest.json)")
        parser.add_argument("--dry-run", action="store_true", help="read and check everything, write nothing")
        parser.add_argument(
            "--check", action="store_true", help="compare the export with Redis entity by entity; write nothing"
        )
        parser.add_argument("--report", help="write every skipped record with its reason to this JSON Lines file")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **opts: Any) -> None:
        progress = False if opts["no_progress"] else None
        try:
            if opts["check"]:
                self._check(Path(opts["directory"]), progress)
                return
            report_file = open(opts["report"], "w", encoding="utf-8") if opts["report"] else None  # noqa: SIM115
            try:
                report = import_data(
                    Path(opts["directory"]), dry_run=opts["dry_run"], progress=progress, report_file=report_file
                )
            finally:
                if report_file:
                    report_file.close()
        except PortabilityError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"Cannot read {exc.filename or opts['directory']}: {exc.strerror or exc}") from None
        except redis.RedisError as exc:
            raise CommandError(f"Redis error: {exc}. Importing again is safe (existing data is kept).") from None
        for line in report.lines():
            self.stdout.write(line)
        tables = report.tables.values()
        verb = "would write" if opts["dry_run"] else "wrote"
        self.stdout.write(
            f"{'Dry run: ' if opts['dry_run'] else ''}read {sum(t.read for t in tables)} records, "
            f"{verb} {sum(t.written for t in tables)}, skipped {sum(sum(t.skipped.values()) for t in tables)} "
            f"({report.problems} problems)."
        )

    def _check(self, directory: Path, progress: bool | None) -> None:
        differences = check_export(directory, progress=progress)
        for line in differences[:200]:
            self.stdout.write(line)
        if differences:
            raise CommandError(f"The export and Redis differ in {len(differences)} keys.", returncode=1)
        self.stdout.write("The export and Redis match, entity by entity and index by index.")
