from django.apps import AppConfig


class SearchConfig(AppConfig):
    """Semantic search: embeddings, vector stores, the outbox indexer and the search endpoint."""

    name = "storage.search"
    label = "search"

    def ready(self) -> None:
        from storage.search.indexer import register_health_checks

        register_health_checks()
