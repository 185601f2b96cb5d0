"""Message parts (AI SDK UI parts, v4 and v5 shapes) turned into something a person can read.

Each part becomes a small dict the transcript template knows how to draw: text stays text,
tool calls show their name, state, input and output, files and sources show a name and a
link (only http(s) links are clickable; data: and javascript: URLs are shown as text).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from storage.staff.views.common import pretty_json

MAX_INLINE_CHARS = 20_000


def safe_link(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


def _clip(text: Any) -> str:
    text = text if isinstance(text, str) else pretty_json(text)
    if len(text) > MAX_INLINE_CHARS:
        return text[:MAX_INLINE_CHARS] + f"\n… ({len(text) - MAX_INLINE_CHARS} more characters)"
    return text


def _tool(name: str, state: Any, call_input: Any, output: Any, error: Any) -> dict[str, Any]:
    return {
        "kind": "tool",
        "title": name or "tool",
        "state": state or "",
        "input": _clip(call_input) if call_input is not None else None,
        "output": _clip(output) if output is not None else None,
        "error": _clip(error) if error else None,
    }


def render_part(part: Any) -> dict[str, Any]:
    if not isinstance(part, dict):
        return {"kind": "other", "title": type(part).__name__, "body": _clip(part)}
    kind = str(part.get("type", ""))
    if kind == "text":
        return {"kind": "text", "body": _clip(part.get("text", ""))}
    if kind == "reasoning":
        return {"kind": "reasoning", "body": _clip(part.get("text") or part.get("reasoning") or "")}
    if kind == "step-start":
        return {"kind": "step"}
    if kind == "tool-invocation":  # AI SDK v4
        call = part.get("toolInvocation") or {}
        return _tool(call.get("toolName", ""), call.get("state"), call.get("args"), call.get("result"), None)
    if kind == "dynamic-tool" or kind.startswith("tool-"):  # AI SDK v5
        name = part.get("toolName") or kind.removeprefix("tool-")
        return _tool(name, part.get("state"), part.get("input"), part.get("output"), part.get("errorText"))
    if kind == "file":
        return {
            "kind": "file",
            "title": part.get("filename") or "file",
            "media": part.get("mediaType") or part.get("mimeType") or "",
            "url": safe_link(part.get("url")),
        }
    if kind in ("source-url", "source"):
        source = part.get("source") if isinstance(part.get("source"), dict) else part
        return {
            "kind": "source",
            "title": source.get("title") or source.get("url") or "source",
            "url": safe_link(source.get("url")),
        }
    if kind == "source-document":
        return {"kind": "source", "title": part.get("title") or part.get("filename") or "document", "url": None}
    if kind.startswith("data-"):
        return {"kind": "other", "title": kind, "body": _clip(part.get("data"))}
    return {"kind": "other", "title": kind or "part", "body": _clip(part)}


def render_message(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's parts for display; a message saved without parts shows its plain content."""
    parts = message.get("parts") or []
    if not parts and message.get("content"):
        return [{"kind": "text", "body": _clip(message["content"])}]
    return [render_part(part) for part in parts]
