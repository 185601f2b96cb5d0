"""``manage.py reindex [--user U ...] [--learning]``: rebuild the vector store from Redis, with a progress bar.

Without ``--user`` every user namespace is dropped and rebuilt, and the index is recorded as built
with the configured embedding model (this is how to switch models). With ``--user`` only those
users are rebuilt (the index must already be on the configured model). Runs safely next to
``run_indexer``: a user being rebuilt is not indexed by it meanwhile (per-user lease).
``--learning`` also rebuilds the learning namespaces from the items ``load_learning`` keeps in Redis.
"""

from __future__ import annotations

from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mookti.backends import BackendError
from mookti.progress import progress as progress_bar
from storage.search import learning
from storage.search.embeddings import get_embeddings
from storage.search.indexer import all_user_ids, clear_store, rebuild_user
from storage.search.indexing import count_items
from storage.search.vectors import check_index, get_vector_store, learning_namespaces, record_index

__all__ = ["Command", "count_items"]


class Command(BaseCommand):
    help = "Rebuild the vector store from Redis (all users, or --user U)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", action="append", dest="users", help="only this user (repeatable)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--learning", action="store_true", help="also rebuild the learning namespaces from their stored items"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            self._reindex(opts["users"], progress=not opts["no_progress"])
            if opts["learning"]:
                self._learning(progress=not opts["no_progress"])
        except BackendError as exc:
            raise CommandError(f"{exc} Nothing is lost: run reindex again when it is back.") from None
        except redis.RedisError as exc:
            raise CommandError(f"Redis is unavailable: {exc}") from None

    def _reindex(self, users: list[str] | None, progress: bool) -> None:
        embeddings = get_embeddings()
        store = get_vector_store()
        if users:
            check_index(embeddings, store, claim=True)
            user_ids = users
        else:
            self._check_dimension(embeddings, store)
            dropped = clear_store(store)
            record_index(embeddings, store)
            self.stdout.write(f"Dropped {dropped} namespaces; index recorded for {embeddings.model_id}.")
            if learning_namespaces():
                self.stdout.write("Learning namespaces were kept as they are: `reindex --learning` rebuilds them too.")
            user_ids = all_user_ids()
        total = count_items(user_ids)
        embeddings.warm_up()
        done = 0
        with progress_bar(total=total, unit="item", enabled=progress, file=self.stderr._out) as bar:
            for user_id in user_ids:
                done += rebuild_user(user_id, embeddings, store, progress=bar.update)
        self.stdout.write(f"Reindexed {done} items of {len(user_ids)} users into {store.describe()}.")

    def _learning(self, progress: bool) -> None:
        embeddings, store = get_embeddings(), get_vector_store()
        check_index(embeddings, store, claim=True)
        for namespace in learning.learning_namespaces_with_items():
            total = len(learning.stored_items(namespace))
            with progress_bar(total=total, unit="item", enabled=progress, file=self.stderr._out) as bar:
                done = learning.rebuild(embeddings, store, namespace, progress=bar.update)
            self.stdout.write(f"Reindexed {done} learning items into {namespace}.")

    def _check_dimension(self, embeddings: Any, store: Any) -> None:
        if not store.describe().startswith("pinecone:"):
            return
        dimension = store.dimension()
        if dimension is not None and dimension != embeddings.dimension:
            raise CommandError(
                f"The Pinecone index has dimension {dimension}; {embeddings.model_id} needs {embeddings.dimension}. "
                "Create an index of that dimension (cosine), set PINECONE_INDEX_HOST to it, then run reindex."
            )
