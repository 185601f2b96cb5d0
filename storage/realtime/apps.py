from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """Live updates: the websocket consumer, its tickets and routing."""

    name = "storage.realtime"
    label = "realtime"
