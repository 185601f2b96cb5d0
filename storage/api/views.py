"""The storage REST API: thin viewsets over the managers (ai-chatbot's queries.ts, as HTTP)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from mookti.api.inputs import path_id, query, quick_query, validated
from mookti.api.parsers import StrictJSONParser
from mookti.api.schema import errors
from mookti.errors import Forbidden, Invalid, NotFound, Unauthorized
from mookti.redis import Plan, run_plan
from storage.api import serializers as s
from storage.api.auth import BearerCredential, Principal
from storage.api.conditional import (
    CACHE_CONTROL,
    IF_NONE_MATCH,
    NOT_MODIFIED,
    conditional,
    evaluate_plan,
    revision,
)
from storage.api.hot import MEDIA_TYPE, Answer, HotReads, Skip
from storage.api.permissions import IsMooktiUser, IsMooktiUserOrReadOnly, IsService, IsServiceOrSelf, actor_id
from storage.managers import chats, documents, messages, tokens, users, votes
from storage.managers.paging import PageRequest
from storage.managers.streams import streams as stream_buffers


def page_of(params: dict[str, Any], order: str = "desc") -> PageRequest:
    return PageRequest(params["limit"], params.get("startingAfter"), params.get("endingBefore"), order)


# --- the reads the DRF actions and the hot reads (storage.api.hot) share ---------------------------
def chat_page(actor: str, params: dict[str, Any], rev: Any) -> Plan[dict[str, Any]]:
    found, has_more = yield from chats.list_plan(actor, page_of(params), params["orderBy"], rev)
    return {"chats": s.ChatOut.render_many(found), "hasMore": has_more}


def message_page(actor: Any, params: dict[str, Any], rev: Any) -> Plan[dict[str, Any]]:
    found, has_more = yield from messages.list_plan(actor, params["chatId"], page_of(params, order="asc"), rev)
    return {"messages": s.MessageOut.render_many(found), "hasMore": has_more}


def chat_of(actor: Any, chat_id: str, rev: Any) -> Plan[dict[str, Any]]:
    return s.ChatOut.render((yield from chats.read_plan(actor, chat_id, rev)))


def _answer(rev: Any, plan: Plan[Any]) -> Plan[Answer]:
    code, data, etag = yield from evaluate_plan(rev, plan)
    return code, data, {"ETag": etag, "Cache-Control": CACHE_CONTROL}


def _quick(serializer_class: type, request: Any) -> dict[str, Any]:
    params = quick_query(serializer_class, request.GET.dict())
    if params is None:
        raise Skip
    return params


def hot_chat_list(request: Any, credential: BearerCredential) -> Plan[Answer]:
    params = _quick(s.ChatPageQuery, request)

    def plan() -> Plan[Answer]:
        actor = yield from credential.check_plan()  # the list's keys are the user's: its own round trip
        rev = revision(request, "user", actor, "chats", MEDIA_TYPE)
        return (yield from _answer(rev, chat_page(actor, params, rev)))

    return plan()


def hot_chat(request: Any, credential: BearerCredential, pk: str) -> Plan[Answer]:
    try:
        chat_id = path_id(pk)
    except Invalid:
        raise Skip from None
    rev = revision(request, "chat", chat_id, "chat", MEDIA_TYPE)
    return _answer(rev, chat_of(credential, chat_id, rev))


def hot_message_page(request: Any, credential: BearerCredential) -> Plan[Answer]:
    params = _quick(s.MessagePageQuery, request)
    rev = revision(request, "chat", params["chatId"], "messages", MEDIA_TYPE)
    return _answer(rev, message_page(credential, params, rev))


def hot_save_messages(credential: BearerCredential, data: Any) -> Plan[Answer]:
    batch = s.quick_messages(data)
    if batch is None:
        raise Skip

    def plan() -> Plan[Answer]:
        actor = yield from credential.check_plan()
        saved = yield from messages.save_plan(actor, batch)
        return status.HTTP_201_CREATED, s.MessageOut.render_many(saved), {}

    return plan()


class UserViewSet(viewsets.ViewSet):
    """getUser / createUser / createGuestUser, profiles and account deletion."""

    lookup_value_regex = "[^/]+"

    def get_permissions(self) -> list:
        if self.action in ("create", "guest", "list"):
            return [IsService()]
        if self.action == "me":
            return [IsMooktiUser()]
        return [IsServiceOrSelf()]

    @extend_schema(
        parameters=[OpenApiParameter("email", {"type": "string", "minLength": 1}, required=True)],
        responses=s.UserOut(many=True),
        operation_id="getUser",
        summary="The user with this email (0 or 1)",
    )
    def list(self, request: Request) -> Response:
        email = request.query_params.get("email", "")
        if not email:
            raise Invalid("Give ?email=.", {"email": ["required"]})
        user = users.get_by_email(email)
        return Response(s.UserOut([user] if user else [], many=True).data)

    @extend_schema(request=s.UserCreateIn, responses={201: s.UserOut, **errors(409)}, operation_id="createUser")
    def create(self, request: Request) -> Response:
        data = validated(s.UserCreateIn, request.data)
        user = users.create(
            data["email"],
            data.get("password"),
            name=data.get("name", ""),
            user_type=data.get("type", "free"),
            timezone=data.get("timezone", "UTC"),
            preferences=data.get("preferences"),
            user_id=data.get("id"),
        )
        return Response(s.UserOut(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: s.UserOut}, operation_id="createGuestUser")
    @action(detail=False, methods=["post"])
    def guest(self, request: Request) -> Response:
        return Response(s.UserOut(users.create_guest()).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.UserOut, operation_id="getCurrentUser", summary="The user the call acts for")
    @action(detail=False, methods=["get"])
    def me(self, request: Request) -> Response:
        return self.retrieve(request, pk=actor_id(request))

    @extend_schema(parameters=[IF_NONE_MATCH], responses={200: s.UserOut, **NOT_MODIFIED}, operation_id="getUserById")
    def retrieve(self, request: Request, pk: str) -> Response:
        user_id = path_id(pk)
        rev = revision(request, "user", user_id, "profile")

        def build() -> dict:
            user = users.read(user_id, rev)
            if user is None:
                raise NotFound("user")
            return s.UserOut(user).data

        return conditional(rev, build)

    @extend_schema(request=s.UserUpdateIn, responses=s.UserOut, operation_id="updateUser")
    def partial_update(self, request: Request, pk: str) -> Response:
        changes = validated(s.UserUpdateIn, request.data)
        if "type" in changes and not request.user.is_service:
            raise Forbidden("Only the service key changes a user's type.", {"type": ["read-only"]})
        return Response(s.UserOut(users.update(path_id(pk), changes)).data)

    @extend_schema(responses={204: None}, operation_id="deleteUser", summary="Delete a user with all their data")
    def destroy(self, request: Request, pk: str) -> Response:
        if not users.delete(path_id(pk)):
            raise NotFound("user")
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(viewsets.ViewSet):
    """Issue a user API token (email + password, or the service key naming ``userId``) or revoke it."""

    permission_classes = [AllowAny]

    @extend_schema(request=s.TokenIn, responses={201: s.TokenOut}, operation_id="createToken")
    def create(self, request: Request) -> Response:
        data = validated(s.TokenIn, request.data)
        if "userId" in data:
            if not (isinstance(request.user, Principal) and request.user.is_service):
                raise Forbidden("Issuing a token by userId needs the service key.")
            user = users.get(data["userId"])
        else:
            user = users.authenticate(data["email"], data["password"])
            if user is None:
                raise Unauthorized("Wrong email or password.", {"password": ["wrong email or password"]})
        if user is None:
            raise NotFound("user")
        return Response(s.TokenOut(tokens.issue(user["id"], data.get("ttl"))).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None}, operation_id="revokeToken", summary="Revoke the calling token")
    @action(detail=False, methods=["delete"], url_path="current")
    def revoke(self, request: Request) -> Response:
        principal = request.user
        if not isinstance(principal, Principal) or not principal.token:
            raise NotAuthenticated("Call with the user token to revoke.")
        tokens.revoke(principal.token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChatViewSet(HotReads, viewsets.ViewSet):
    """Chats of the calling user (getChatsByUserId, saveChat, getChatById, deleteChatById, ...)."""

    permission_classes = [IsMooktiUserOrReadOnly]
    lookup_value_regex = "[^/]+"
    hot = {"list": hot_chat_list, "retrieve": hot_chat}

    def get_permissions(self) -> list:
        if self.action == "list":
            return [IsMooktiUser()]
        return super().get_permissions()

    @extend_schema(
        parameters=[s.ChatPageQuery, IF_NONE_MATCH],
        responses={200: s.ChatPageOut, **NOT_MODIFIED},
        operation_id="getChatsByUserId",
    )
    def list(self, request: Request) -> Response:
        params = query(request, s.ChatPageQuery)
        rev = revision(request, "user", actor_id(request), "chats")
        return conditional(rev, lambda: run_plan(chat_page(actor_id(request), params, rev)))

    @extend_schema(request=s.ChatCreateIn, responses={201: s.ChatOut, **errors(409)}, operation_id="saveChat")
    def create(self, request: Request) -> Response:
        data = validated(s.ChatCreateIn, request.data)
        chat = chats.create(
            actor_id(request),
            chat_id=data.get("id"),
            title=data.get("title") or "New chat",
            visibility=data.get("visibility", "private"),
            created_at=data.get("createdAt"),
        )
        return Response(s.ChatOut(chat).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[IF_NONE_MATCH], responses={200: s.ChatOut, **NOT_MODIFIED}, operation_id="getChatById")
    def retrieve(self, request: Request, pk: str) -> Response:
        chat_id = path_id(pk)
        rev = revision(request, "chat", chat_id, "chat")
        return conditional(rev, lambda: run_plan(chat_of(actor_id(request), chat_id, rev)))

    @extend_schema(
        request=s.ChatUpdateIn,
        responses=s.ChatOut,
        operation_id="updateChatById",
        summary="updateChatVisibilityById / updateChatTitleById",
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        changes = validated(s.ChatUpdateIn, request.data)
        return Response(s.ChatOut(chats.update(actor_id(request), path_id(pk), changes)).data)

    @extend_schema(responses={200: s.ChatOut}, operation_id="deleteChatById", summary="Delete a chat; answers it")
    def destroy(self, request: Request, pk: str) -> Response:
        return Response(s.ChatOut(chats.delete(actor_id(request), path_id(pk))).data)

    @extend_schema(request=None, responses={200: s.DeletedCountOut}, operation_id="deleteAllChatsByUserId")
    @action(detail=False, methods=["delete"], url_path="all")
    def destroy_all(self, request: Request) -> Response:
        return Response({"deletedCount": chats.delete_all_for_user(actor_id(request))})

    @extend_schema(methods=["GET"], responses=s.StreamOut(many=True), operation_id="getStreamIdsByChatId")
    @extend_schema(
        methods=["POST"], request=s.StreamIn, responses={201: s.StreamOut, **errors(409)}, operation_id="createStreamId"
    )
    @action(detail=True, methods=["get", "post"])
    def streams(self, request: Request, pk: str) -> Response:
        chat_id = path_id(pk)
        if request.method == "GET":
            return Response(s.StreamOut(chats.list_streams(actor_id(request), chat_id), many=True).data)
        data = validated(s.StreamIn, request.data)
        stream = stream_buffers.create(actor_id(request), chat_id, data["streamId"])  # also the chat's active stream
        return Response(s.StreamOut(stream).data, status=status.HTTP_201_CREATED)


class MessageViewSet(HotReads, viewsets.ViewSet):
    """Messages (saveMessages, getMessagesByChatId, getMessageById, updateMessage, ...)."""

    permission_classes = [IsMooktiUserOrReadOnly]
    lookup_value_regex = "[^/]+"
    hot = {"list": hot_message_page}
    hot_writes = {"create": hot_save_messages}

    def get_permissions(self) -> list:
        if self.action == "count":
            return [IsMooktiUser()]
        return super().get_permissions()

    @extend_schema(
        parameters=[s.MessagePageQuery, IF_NONE_MATCH],
        responses={200: s.MessagePageOut, **NOT_MODIFIED},
        operation_id="getMessagesByChatId",
    )
    def list(self, request: Request) -> Response:
        params = query(request, s.MessagePageQuery)
        rev = revision(request, "chat", params["chatId"], "messages")
        return conditional(rev, lambda: run_plan(message_page(actor_id(request), params, rev)))

    @extend_schema(
        request=s.MessagesIn,
        responses={201: s.MessageOut(many=True), **errors(409, 429)},
        operation_id="saveMessages",
        summary="Save messages (a batch, or one message object)",
    )
    def create(self, request: Request) -> Response:
        batch = s.quick_messages(request.data)
        if batch is None:
            data = (
                request.data
                if isinstance(request.data, dict) and "messages" in request.data
                else {"messages": [request.data]}
            )
            batch = [dict(m) for m in validated(s.MessagesIn, data)["messages"]]
        saved = messages.save(actor_id(request), batch)
        return Response(s.MessageOut(saved, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.MessageOut, operation_id="getMessageById")
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.MessageOut(messages.get(actor_id(request), path_id(pk))).data)

    @extend_schema(request=s.MessageUpdateIn, responses=s.MessageOut, operation_id="updateMessage")
    def partial_update(self, request: Request, pk: str) -> Response:
        changes = validated(s.MessageUpdateIn, request.data)
        return Response(s.MessageOut(messages.update(actor_id(request), path_id(pk), changes)).data)

    @extend_schema(
        parameters=[s.DeleteAfterQuery],
        responses={200: s.DeletedMessagesOut},
        operation_id="deleteMessagesByChatIdAfterTimestamp",
    )
    @action(detail=False, methods=["delete"], url_path="after")
    def delete_after(self, request: Request) -> Response:
        params = query(request, s.DeleteAfterQuery)
        deleted = messages.delete_after(actor_id(request), params["chatId"], params["timestamp"])
        return Response({"deletedIds": deleted, "deletedCount": len(deleted)})

    @extend_schema(parameters=[s.CountQuery], responses=s.MessageCountOut, operation_id="getMessageCountByUserId")
    @action(detail=False, methods=["get"])
    def count(self, request: Request) -> Response:
        params = query(request, s.CountQuery)
        return Response({"count": messages.count_recent(actor_id(request), params["hours"]), "hours": params["hours"]})


class VoteViewSet(viewsets.ViewSet):
    """voteMessage / getVotesByChatId."""

    permission_classes = [IsMooktiUserOrReadOnly]

    @extend_schema(parameters=[s.ChatIdQuery], responses=s.VoteOut(many=True), operation_id="getVotesByChatId")
    def list(self, request: Request) -> Response:
        params = query(request, s.ChatIdQuery)
        return Response(s.VoteOut(votes.list(actor_id(request), params["chatId"]), many=True).data)

    @extend_schema(request=s.VoteIn, responses={200: s.VoteOut}, operation_id="voteMessage", summary="Vote (upsert)")
    def create(self, request: Request) -> Response:
        data = validated(s.VoteIn, request.data)
        vote = votes.vote(actor_id(request), data["chatId"], data["messageId"], data["type"])
        return Response(s.VoteOut(vote).data)


class DocumentViewSet(viewsets.ViewSet):
    """Documents: saveDocument, getDocumentById, getDocumentsById, deleteDocumentsByIdAfterTimestamp,
    saveSuggestions, getSuggestionsByDocumentId."""

    permission_classes = [IsMooktiUser]
    lookup_value_regex = "[^/]+"

    def get_parsers(self) -> list:
        """JSON everywhere; multipart too for saveDocument (a file upload)."""
        request = getattr(self, "request", None)  # None while the schema is generated (action is set then)
        action = self.action_map.get(request.method.lower()) if request is not None else self.action
        if action == "create":
            return [StrictJSONParser(), MultiPartParser()]
        return super().get_parsers()

    @extend_schema(
        parameters=[s.PageQuery],
        responses=s.DocumentPageOut,
        operation_id="getDocumentsByUserId",
        summary="The user's documents (latest versions, newest first)",
    )
    def list(self, request: Request) -> Response:
        params = query(request, s.PageQuery)
        found, has_more = documents.list_for_user(actor_id(request), page_of(params))
        return Response({"documents": s.DocumentSummaryOut(found, many=True).data, "hasMore": has_more})

    @extend_schema(
        request={"application/json": s.DocumentJsonIn, "multipart/form-data": s.DocumentIn},
        responses={201: s.DocumentOut},
        operation_id="saveDocument",
        summary="Save a new version (JSON, or multipart with a PDF or UTF-8 text file)",
    )
    def create(self, request: Request) -> Response:
        data = validated(s.DocumentIn, request.data)
        saved = documents.save(
            actor_id(request),
            document_id=data.get("id"),
            title=data["title"],
            kind=data["kind"],
            content=data.get("content"),
        )
        return Response(s.DocumentOut(saved).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[IF_NONE_MATCH],
        responses={200: s.DocumentOut, **NOT_MODIFIED},
        operation_id="getDocumentById",
        summary="The latest version",
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        document_id = path_id(pk)
        rev = revision(request, "document", document_id, "document")
        return conditional(rev, lambda: s.DocumentOut(documents.latest(actor_id(request), document_id, rev)).data)

    @extend_schema(
        parameters=[IF_NONE_MATCH],
        responses={200: s.DocumentOut(many=True), **NOT_MODIFIED},
        operation_id="getDocumentsById",
        summary="All versions",
    )
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str) -> Response:
        document_id = path_id(pk)
        rev = revision(request, "document", document_id, "document")
        return conditional(
            rev, lambda: s.DocumentOut(documents.versions(actor_id(request), document_id, rev), many=True).data
        )

    @extend_schema(
        parameters=[s.TimestampQuery],
        responses={200: s.DeletedCountOut},
        operation_id="deleteDocumentsByIdAfterTimestamp",
        summary="Delete the versions after timestamp (all without it)",
    )
    def destroy(self, request: Request, pk: str) -> Response:
        params = query(request, s.TimestampQuery)
        deleted = documents.delete_after(actor_id(request), path_id(pk), params.get("timestamp", -1))
        return Response({"deletedCount": deleted})

    @extend_schema(methods=["GET"], responses=s.SuggestionOut(many=True), operation_id="getSuggestionsByDocumentId")
    @extend_schema(
        methods=["POST"],
        request=s.SuggestionsIn,
        responses={201: s.SuggestionOut(many=True)},
        operation_id="saveSuggestions",
    )
    @action(detail=True, methods=["get", "post"])
    def suggestions(self, request: Request, pk: str) -> Response:
        document_id = path_id(pk)
        if request.method == "GET":
            return Response(s.SuggestionOut(documents.suggestions(actor_id(request), document_id), many=True).data)
        items = validated(s.SuggestionsIn, request.data)["suggestions"]
        saved = documents.save_suggestions(actor_id(request), document_id, [dict(i) for i in items])
        return Response(s.SuggestionOut(saved, many=True).data, status=status.HTTP_201_CREATED)
