"""Websocket routes (the consumer arrives with live updates)."""

websocket_urlpatterns: list = []
