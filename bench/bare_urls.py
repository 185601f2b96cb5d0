"""Bench-only URLs: the product's URLs plus "bare" Django views under ``/bench/bare/``.

A bare view does the same Redis work as the DRF endpoint it shadows -- the same bearer-token
lookup (one HGET) and the same manager call, hence the identical pipelines -- but with a plain
Django function view: ``json.loads`` instead of DRF parsers and serializers, a dict instead of
serializer output, ``JsonResponse`` instead of DRF's renderer. Comparing the two measures what
DRF (viewsets, authentication/permission classes, serializers, renderers) costs per request.
Input is trusted (the benchmark sends valid requests only); nothing here is served by the product.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from mookti.ids import iso
from storage.managers import chats, messages, tokens
from storage.managers.paging import PageRequest

View = Callable[[HttpRequest, str], HttpResponse]


def bare(view: View) -> Callable[[HttpRequest], HttpResponse]:
    """Bearer token -> user id (one HGET, as ``storage.api.auth``), else 401."""

    @csrf_exempt
    def wrapped(request: HttpRequest) -> HttpResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        user_id = tokens.user_for(token.strip()) if scheme == "Bearer" else None
        if user_id is None:
            return JsonResponse({"error": "unauthenticated"}, status=401)
        return view(request, user_id)

    return wrapped


def chat_json(chat: dict[str, Any]) -> dict[str, Any]:
    return {**chat, "createdAt": iso(chat["createdAt"]), "lastMessageAt": iso(chat["lastMessageAt"])}


def message_json(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "createdAt": iso(message["createdAt"])}


@bare
def chat_view(request: HttpRequest, user_id: str) -> HttpResponse:
    """POST: saveChat; GET: getChatsByUserId (newest first)."""
    if request.method == "POST":
        body = json.loads(request.body)
        chat = chats.create(user_id, title=body.get("title") or "New chat")
        return JsonResponse(chat_json(chat), status=201)
    page = PageRequest(int(request.GET.get("limit", 20)))
    found, has_more = chats.list_for_user(user_id, page)
    return JsonResponse({"chats": [chat_json(c) for c in found], "hasMore": has_more})


@bare
def message_view(request: HttpRequest, user_id: str) -> HttpResponse:
    """POST: saveMessages (one message); GET: getMessagesByChatId (oldest first)."""
    if request.method == "POST":
        body = json.loads(request.body)
        message = {"chatId": body["chatId"], "role": body["role"], "parts": body["parts"]}
        saved = messages.save(user_id, [message])
        return JsonResponse([message_json(m) for m in saved], safe=False, status=201)
    page = PageRequest(int(request.GET.get("limit", 100)), order="asc")
    found, has_more = messages.list(user_id, request.GET["chatId"], page)
    return JsonResponse({"messages": [message_json(m) for m in found], "hasMore": has_more})


urlpatterns = [
    path("bench/bare/chat", chat_view),
    path("bench/bare/message", message_view),
    path("", include("mookti.urls")),
]
