"""``manage.py run_indexer``: keep the vector store in step with Redis (the outbox consumer).

Runs until SIGTERM/SIGINT, then finishes the batch in hand and exits 0. Start as many as you like:
they share the work as one consumer group. ``--drain`` exits once the outbox is empty.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mookti.backends import IndexMismatch
from storage.search.indexer import Indexer, index_metrics

logger = logging.getLogger("storage.search.indexer")


def summary(indexer: Indexer) -> dict[str, float]:
    return {name: round(value, 1) if isinstance(value, float) else value for name, value in indexer.stats.items()}


class Command(BaseCommand):
    help = "Index message and document changes from the Redis outbox into the vector store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", help="consumer name in the group (default: host-pid-random)")
        parser.add_argument("--batch-size", type=int, help="entries per batch (default: MOOKTI_INDEXER)")
        parser.add_argument("--drain", action="store_true", help="exit once the outbox is empty")
        parser.add_argument("--timeout", type=float, default=600.0, help="with --drain: give up after this long")

    def handle(self, *args: Any, **opts: Any) -> None:
        options = {"BATCH_SIZE": opts["batch_size"]} if opts["batch_size"] else None
        try:
            indexer = Indexer(opts["consumer"], options=options)
            if opts["drain"]:
                self._drain(indexer, opts["timeout"])
            else:
                self._run(indexer)
        except IndexMismatch as exc:
            raise CommandError(str(exc)) from None
        except redis.RedisError as exc:
            raise CommandError(f"Redis is unavailable: {exc}") from None

    def _drain(self, indexer: Indexer, timeout: float) -> None:
        if not indexer.drain(timeout=timeout):
            raise CommandError(f"The outbox was not empty after {timeout:.0f}s: {index_metrics()}")
        self.stdout.write(f"Outbox drained: {summary(indexer)}")

    def _run(self, indexer: Indexer) -> None:
        stop = threading.Event()

        def request_stop(signum: int, _frame: Any) -> None:
            logger.info("received %s, stopping after the current batch", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(
            f"Indexer {indexer.consumer}: {indexer.embeddings.model_id} -> {indexer.store.describe()}", ending="\n"
        )
        self.stdout.flush()
        last_report = [time.monotonic()]

        def report(_handled: int) -> None:
            if time.monotonic() - last_report[0] >= 60:
                last_report[0] = time.monotonic()
                logger.info("indexer %s: %s", indexer.consumer, summary(indexer))

        indexer.run_forever(stop, on_batch=report)
        self.stdout.write(f"Indexer {indexer.consumer} stopped: {summary(indexer)}")
