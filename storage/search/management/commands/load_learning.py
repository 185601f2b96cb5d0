"""``manage.py load_learning <folder or file> [--namespace N] [--sync]``: load shared learning content.

Markdown, text, PDF and JSON-lines files (one item per line: ``id``, ``title``, ``text``, ``path``
and string metadata) are chunked, embedded and upserted into a learning namespace (default: the
first of ``MOOKTI_SEARCH_LEARNING_NAMESPACES``). Idempotent by content hash: a second run embeds
nothing. ``--sync`` removes the items the source no longer has. A progress bar on a terminal,
the counts otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mookti.backends import BackendError
from mookti.progress import progress as progress_bar
from storage.search import learning
from storage.search.embeddings import get_embeddings
from storage.search.vectors import check_index, get_vector_store, learning_namespaces


class Command(BaseCommand):
    help = "Load learning content (Markdown, text, PDF, JSON lines) into a learning namespace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path, help="a folder (read recursively) or a file")
        parser.add_argument("--namespace", help="the learning namespace (default: the first configured)")
        parser.add_argument("--sync", action="store_true", help="remove items the source no longer has")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        namespace = opts["namespace"] or learning.default_namespace()
        try:
            items = learning.read_items(opts["source"])
            embeddings, store = get_embeddings(), get_vector_store()
            check_index(embeddings, store, claim=True)
            show = not opts["no_progress"] and sys.stderr.isatty()
            with progress_bar(total=len(items), unit="item", enabled=show, file=self.stderr._out) as bar:
                counts = learning.load(embeddings, store, namespace, items, sync=opts["sync"], progress=bar.update)
        except learning.SourceError as exc:
            raise CommandError(str(exc)) from None
        except BackendError as exc:
            raise CommandError(f"{exc} Run load_learning again when it is back (it resumes).") from None
        except redis.RedisError as exc:
            raise CommandError(f"Redis is unavailable: {exc}") from None
        self.stdout.write(
            f"{namespace}: {counts['items']} items, {counts['embedded']} embedded, "
            f"{counts['unchanged']} unchanged, {counts['removed']} removed."
        )
        if namespace not in learning_namespaces():
            self.stderr.write(f"Note: add {namespace} to MOOKTI_SEARCH_LEARNING_NAMESPACES to search it.")
