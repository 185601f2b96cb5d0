"""``manage.py compare_data PREFIX [OTHER]``: compare two key prefixes entity by entity and index by index."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from storage.portability.sections import PortabilityError, compare_prefixes


class Command(BaseCommand):
    help = "Compare the data under two Redis key prefixes (default second: MOOKTI_REDIS_PREFIX); exit 1 if they differ."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix")
        parser.add_argument("other", nargs="?", default=None)
        parser.add_argument("--user", action="append", default=None, help="only this user id (repeat)")

    def handle(self, *args: Any, **opts: Any) -> None:
        other = opts["other"] or settings.MOOKTI_REDIS_PREFIX
        try:
            differences = compare_prefixes(opts["prefix"], other, opts["user"])
        except PortabilityError as exc:
            raise CommandError(str(exc)) from None
        except redis.RedisError as exc:
            raise CommandError(f"Redis error: {exc}") from None
        for line in differences[:200]:
            self.stdout.write(line)
        if differences:
            raise CommandError(f"{opts['prefix']!r} and {other!r} differ in {len(differences)} keys.", returncode=1)
        self.stdout.write(f"{opts['prefix']!r} and {other!r} hold the same data.")
