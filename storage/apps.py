from django.apps import AppConfig


class StorageConfig(AppConfig):
    """Chat data: users, tokens, chats, messages, votes, streams, documents and suggestions."""

    name = "storage"

    def ready(self) -> None:
        from storage.api import schema  # noqa: F401 - registers the OpenAPI auth extension
