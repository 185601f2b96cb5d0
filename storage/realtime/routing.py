"""Websocket routes."""

from django.urls import path

from storage.realtime.consumers import EventsConsumer

websocket_urlpatterns = [path("ws/events/", EventsConsumer.as_asgi())]
