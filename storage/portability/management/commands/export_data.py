"""``manage.py export_data [--user U] --output DIR``: a versioned JSON Lines export (``storage.portability``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mookti.ids import is_valid_id
from storage.portability.sections import PortabilityError, export_data


class Command(BaseCommand):
    help = "Export every user's data (backup) or one user's (--user, a GDPR data export) as JSON Lines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", required=True, help="a new (or empty) directory to write")
        parser.add_argument("--user", help="only this user id")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["user"] is not None and not is_valid_id(opts["user"]):
            raise CommandError(f"--user: {opts['user']!r} is not a valid id.")
        try:
            manifest = export_data(Path(opts["output"]), opts["user"], progress=False if opts["no_progress"] else None)
        except PortabilityError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"Cannot write {opts['output']}: {exc.strerror or exc}") from None
        except redis.RedisError as exc:
            raise CommandError(f"Redis error: {exc}") from None
        counts = [
            f"{info['records']} {name}"
            for section in manifest["sections"].values()
            for name, info in section["files"].items()
        ]
        self.stdout.write(
            f"Exported {manifest['users']} users to {opts['output']}: {', '.join(counts) or 'nothing else'}."
        )
