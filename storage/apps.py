from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "storage"

    def ready(self) -> None:
        from storage import schema  # noqa: F401 - registers the OpenAPI auth extension
        from storage.indexer import register_health_checks

        register_health_checks()
