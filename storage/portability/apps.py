from django.apps import AppConfig


class PortabilityConfig(AppConfig):
    """Export, import, compare and repair of the stored data, and the migration from ai-chatbot."""

    name = "storage.portability"
    label = "portability"
