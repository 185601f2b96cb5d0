from django.apps import AppConfig


class SearchConfig(AppConfig):
    """Semantic search: embeddings, vector stores, the outbox indexer and the search endpoint."""

    name = "storage.search"
    label = "search"

    def ready(self) -> None:
        from storage.search import kinds
        from storage.search.indexer import register_health_checks
        from storage.search.kinds.chats import DocumentKind, MessageKind
        from storage.search.kinds.learning import LearningKind

        register_health_checks()
        # chat data is searchable through its managers (storage does not import search)
        kinds.register(MessageKind())
        kinds.register(DocumentKind())
        kinds.register(LearningKind())
