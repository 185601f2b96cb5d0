"""The generated OpenAPI document says what the server does (the fuzzing in
test_schemathesis.py checks it by machine; these pin the shape the clients rely on)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]+$")
AI_CHATBOT_NAMES = {
    "getUser", "createUser", "createGuestUser", "saveChat", "deleteChatById", "deleteAllChatsByUserId",
    "getChatsByUserId", "getChatById", "saveMessages", "getMessagesByChatId", "voteMessage", "getVotesByChatId",
    "saveDocument", "getDocumentsById", "getDocumentById", "deleteDocumentsByIdAfterTimestamp", "saveSuggestions",
    "getSuggestionsByDocumentId", "getMessageById", "deleteMessagesByChatIdAfterTimestamp", "getMessageCountByUserId",
    "createStreamId", "getStreamIdsByChatId", "updateMessage",
}  # fmt: skip


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict[str, Any]):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def response_schema(schema: dict[str, Any], operation_id: str, status: str = "200") -> dict[str, Any]:
    for _, _, operation in operations(schema):
        if operation["operationId"] == operation_id:
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            ref = content.get("$ref", "")
            return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else content
    raise KeyError(operation_id)


def test_operation_ids_are_camel_case_with_ai_chatbot_names(schema) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids))
    assert all(CAMEL.match(i) for i in ids), [i for i in ids if not CAMEL.match(i)]
    assert set(ids) >= AI_CHATBOT_NAMES, AI_CHATBOT_NAMES - set(ids)


def test_every_operation_documents_its_errors_with_the_error_component(schema) -> None:
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    for path, method, operation in operations(schema):
        codes = {int(code) for code in operation["responses"] if int(code) >= 400}
        assert 503 in codes, (method, path)
        if not path.startswith("/api/health/"):  # no auth; the report is the 503 body
            assert {401, 403, 404} <= codes, (method, path, codes)
            for code in codes:
                body = operation["responses"][str(code)]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/Error"}, (method, path, code)
        if "429" in operation["responses"]:
            assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_lists_are_page_objects_and_answers_are_typed(schema) -> None:
    for operation_id, key in [("getChatsByUserId", "chats"), ("getMessagesByChatId", "messages"),
                              ("getDocumentsByUserId", "documents"), ("getGoals", "goals"),
                              ("getProgressPaths", "paths")]:  # fmt: skip
        page = response_schema(schema, operation_id)
        assert page["type"] == "object" and page["properties"][key]["type"] == "array", operation_id
    assert set(response_schema(schema, "getMessageCountByUserId")["properties"]) == {"count", "hours"}
    assert "deletedIds" in response_schema(schema, "deleteMessagesByChatIdAfterTimestamp")["properties"]
    assert "deletedCount" in response_schema(schema, "deleteAllChatsByUserId")["properties"]
    assert "deletedCount" in response_schema(schema, "deleteDocumentsByIdAfterTimestamp")["properties"]
    assert "visibility" in response_schema(schema, "deleteChatById")["properties"]  # 200 with the chat
    assert response_schema(schema, "voteMessage")["properties"]["isUpvoted"]["type"] == "boolean"


def test_enums_parts_and_strict_objects(schema) -> None:
    components = schema["components"]["schemas"]
    assert components["ChatOut"]["properties"]["visibility"] == {"$ref": "#/components/schemas/VisibilityEnum"}
    assert components["MessageOut"]["properties"]["role"] == {"$ref": "#/components/schemas/RoleEnum"}
    assert components["DocumentOut"]["properties"]["kind"] == {"$ref": "#/components/schemas/DocumentKindEnum"}
    parts = components["MessageOut"]["properties"]["parts"]["items"]["anyOf"]
    titles = {part["title"] for part in parts}
    assert {
        "TextPart",
        "ReasoningPart",
        "FilePart",
        "SourceUrlPart",
        "StepStartPart",
        "ToolPart",
        "OtherPart",
    } <= titles
    tool = next(part for part in parts if part["title"] == "ToolPart")
    assert tool["properties"]["state"]["enum"] == [
        "input-streaming",
        "input-available",
        "output-available",
        "output-error",
    ]
    for name, component in components.items():
        if component.get("type") == "object" and "properties" in component:
            assert component["additionalProperties"] is False, name
    assert components["MessagesInRequest"]["properties"]["messages"]["minItems"] == 1


def test_credentials_json_bodies_and_cursors(schema) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["mooktiUser"] == {**schemes["mooktiUser"], "type": "apiKey", "in": "header", "name": "X-Mookti-User"}
    by_id = {operation["operationId"]: operation for _, _, operation in operations(schema)}
    assert {"bearer": [], "mooktiUser": []} in by_id["getChatsByUserId"]["security"]
    assert {} not in by_id["getChatsByUserId"]["security"]
    assert {} in by_id["getChatById"]["security"] and {} in by_id["getMessagesByChatId"]["security"]
    assert "security" not in by_id["getHealth"] or by_id["getHealth"]["security"] in ([], [{}])
    for operation_id, operation in by_id.items():
        media = set(operation.get("requestBody", {}).get("content", {}))
        expected = (
            {"application/json", "multipart/form-data"} if operation_id == "saveDocument" else {"application/json"}
        )
        assert not media or media == expected, (operation_id, media)
    assert by_id["getChatsByUserId"]["x-mutually-exclusive"] == [["startingAfter", "endingBefore"]]


def test_streams_health_and_conditional_gets(schema) -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in operations(schema)}
    assert {"getLiveness", "getReadiness", "getHealth", "appendStreamChunks", "endStream", "resumeStream"} <= set(by_id)
    resume = by_id["resumeStream"]["responses"]
    assert set(resume["200"]["content"]) == {"text/event-stream"}
    assert all(set(resume[code]["content"]) == {"application/json"} for code in resume if int(code) >= 400)
    assert {"404", "422"} <= set(resume) and "409" in by_id["endStream"]["responses"]
    for operation_id, operation in by_id.items():
        assert all(p["name"] != "format" for p in operation.get("parameters", [])), operation_id
        if "304" in operation["responses"]:
            assert any(p["name"] == "If-None-Match" for p in operation["parameters"]), operation_id
            assert "ETag" in operation["responses"]["200"]["headers"], operation_id
