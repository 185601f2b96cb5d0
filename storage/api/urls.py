from django.urls import re_path
from rest_framework.routers import SimpleRouter

from storage.api import streams, views

# Seed paths have no trailing slash (/api/storage/chat); both forms are served. The routes a chat
# client polls come first: Django tries the patterns in order (no two patterns here match one path).
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("chat", views.ChatViewSet, basename="chat")
router.register("message", views.MessageViewSet, basename="message")
router.register("user", views.UserViewSet, basename="user")
router.register("token", views.TokenViewSet, basename="token")
router.register("vote", views.VoteViewSet, basename="vote")
router.register("document", views.DocumentViewSet, basename="document")

urlpatterns = [
    *router.urls,  # first: the routes a client polls (chat, message) are the router's first
    re_path(r"^stream/(?P<stream_id>[^/]+)/chunks/?$", streams.StreamChunksView.as_view(), name="stream-chunks"),
    re_path(r"^stream/(?P<stream_id>[^/]+)/end/?$", streams.StreamEndView.as_view(), name="stream-end"),
    re_path(r"^stream/(?P<stream_id>[^/]+)/state/?$", streams.StreamStateView.as_view(), name="stream-state"),
    re_path(r"^stream/(?P<stream_id>[^/]+)/?$", streams.StreamReadView.as_view(), name="stream-read"),
    re_path(r"^chat/(?P<chat_id>[^/]+)/active/?$", streams.ChatActiveView.as_view(), name="chat-active"),
]
