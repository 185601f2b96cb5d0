"""``manage.py repair [--fix]``: find what a crash or a bug left behind in Redis, and fix it.

Without ``--fix`` it only reports, and exits 1 when it found problems (for cron); with
``--fix`` it repairs and exits 1 only if something is left that needs a person.
"""

from __future__ import annotations

from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from storage.portability import repair


class Command(BaseCommand):
    help = "Check storage keys for orphans and missing index entries (SCAN); --fix repairs them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="repair what is found (default: only report)")
        parser.add_argument("--no-vectors", action="store_true", help="skip comparing the vector store with Redis")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            report = repair.run(
                fix=opts["fix"], progress=False if opts["no_progress"] else None, vectors=not opts["no_vectors"]
            )
        except redis.RedisError as exc:
            raise CommandError(f"Redis error: {exc}. Running repair again is safe.") from None
        for problem in report.examples:
            self.stdout.write(f"{problem.kind}: {problem.key}" + (f" ({problem.detail})" if problem.detail else ""))
        if report.problems > len(report.examples):
            self.stdout.write(f"... and {report.problems - len(report.examples)} more")
        for note in report.notes:
            self.stdout.write(f"note: {note}")
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(report.found.items())) or "no problems"
        self.stdout.write(f"Scanned {report.scanned} keys: {summary}.")
        if opts["fix"]:
            self.stdout.write(f"Fixed {report.fixed}; {report.remaining} left ({report.unfixable} need a person).")
            if report.remaining:
                raise CommandError(f"{report.remaining} problems are left.", returncode=1)
        elif report.problems:
            raise CommandError(f"{report.problems} problems found; run with --fix to repair them.", returncode=1)
