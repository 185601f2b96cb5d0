"""OpenAPI descriptions of the storage API that drf-spectacular cannot infer on its own: the
credentials (a bearer token, alone or with ``X-Mookti-User``) and ai-chatbot's message parts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ACT_AS = "mooktiUser"


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    """A user token alone, or the service key with ``X-Mookti-User`` naming the user it acts for
    (the service key alone only manages users)."""

    target_class = "storage.api.auth.BearerAuthentication"
    name = ["bearer", ACT_AS]

    def get_security_definition(self, auto_schema) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A user token (mkt_...), or the service key (with X-Mookti-User to act for a user).",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Mookti-User",
                "description": "With the service key: the id of the user the call acts for (401 if no such user).",
            },
        ]

    def get_security_requirement(self, auto_schema) -> list[dict[str, list]]:
        return [{"bearer": []}, {"bearer": [], ACT_AS: []}]


def _part(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": name,
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": True,
    }


def _typed(tag: str | dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "enum": [tag]} if isinstance(tag, str) else tag


_PROVIDER = {"providerMetadata": {"type": "object", "additionalProperties": True}}
_STREAM_STATE = {"state": {"type": "string", "enum": ["streaming", "done"]}}
_TOOL_STATES = ["input-streaming", "input-available", "output-available", "output-error"]
_TOOL = {
    "toolCallId": {"type": "string"},
    "state": {"type": "string", "enum": _TOOL_STATES},
    "input": {"description": "The tool's input (free-form JSON)."},
    "output": {"description": "The tool's output (free-form JSON), with state output-available."},
    "errorText": {"type": "string"},
    "providerExecuted": {"type": "boolean"},
}

# ai-chatbot's UI message parts (AI SDK UIMessage); other part types are stored as sent.
MESSAGE_PART_SCHEMAS = [
    _part(
        "TextPart",
        "Text.",
        {"type": _typed("text"), "text": {"type": "string"}, **_STREAM_STATE, **_PROVIDER},
        ["type", "text"],
    ),
    _part(
        "ReasoningPart",
        "The model's reasoning.",
        {"type": _typed("reasoning"), "text": {"type": "string"}, **_STREAM_STATE, **_PROVIDER},
        ["type", "text"],
    ),
    _part(
        "FilePart",
        "A file (an attachment or generated).",
        {
            "type": _typed("file"),
            "mediaType": {"type": "string"},
            "filename": {"type": "string"},
            "url": {"type": "string"},
            **_PROVIDER,
        },
        ["type", "mediaType", "url"],
    ),
    _part(
        "SourceUrlPart",
        "A cited web source.",
        {
            "type": _typed("source-url"),
            "sourceId": {"type": "string"},
            "url": {"type": "string"},
            "title": {"type": "string"},
            **_PROVIDER,
        },
        ["type", "sourceId", "url"],
    ),
    _part(
        "SourceDocumentPart",
        "A cited document.",
        {
            "type": _typed("source-document"),
            "sourceId": {"type": "string"},
            "mediaType": {"type": "string"},
            "title": {"type": "string"},
            "filename": {"type": "string"},
            **_PROVIDER,
        },
        ["type", "sourceId", "mediaType", "title"],
    ),
    _part("StepStartPart", "The start of a step (a model call).", {"type": _typed("step-start")}, ["type"]),
    _part(
        "ToolPart",
        "A typed tool call: `tool-<toolName>`, e.g. `tool-getWeather`.",
        {"type": _typed({"type": "string", "pattern": "^tool-"}), **_TOOL},
        ["type", "toolCallId", "state"],
    ),
    _part(
        "DynamicToolPart",
        "A tool call whose tool is not known statically.",
        {"type": _typed("dynamic-tool"), "toolName": {"type": "string"}, **_TOOL},
        ["type", "toolName", "toolCallId", "state"],
    ),
    _part(
        "DataPart",
        "Custom data: `data-<name>`.",
        {"type": _typed({"type": "string", "pattern": "^data-"}), "id": {"type": "string"}, "data": {}},
        ["type", "data"],
    ),
]
OTHER_PART_SCHEMA = _part(
    "OtherPart",
    "Any other part type: accepted and stored as sent. Every part is an object with a string `type`.",
    # the known types for the generators; others are accepted too (Zalando's x-extensible-enum)
    {
        "type": {
            "type": "string",
            "x-extensible-enum": [
                branch["properties"]["type"]["enum"][0]
                for branch in MESSAGE_PART_SCHEMAS
                if "enum" in branch["properties"]["type"]
            ],
        }
    },
    ["type"],
)
MESSAGE_PART_SCHEMA = {"anyOf": [*MESSAGE_PART_SCHEMAS, OTHER_PART_SCHEMA]}
ATTACHMENT_SCHEMA = {
    "type": "object",
    "description": "An attachment (ai-chatbot: {name, url, contentType}); free-form JSON is stored as sent.",
    "properties": {"name": {"type": "string"}, "url": {"type": "string"}, "contentType": {"type": "string"}},
    "additionalProperties": True,
}
