"""ai-chatbot's deprecated ``Message`` rows (``content`` = AI SDK 4 CoreMessage content) to parts.

The same conversion ai-chatbot's own helper (``lib/db/helpers/01-core-to-parts.ts``) made
for ``Message_v2``: a chat's rows are sorted by time (a tool call before its result before a
plain answer at equal times) and cut into turns at each user message; the assistant and tool
rows of a turn become ONE assistant message, with the id and time of the turn's first
assistant row, tool results folded into their tool invocations, duplicate parts dropped.
Parts use the AI SDK 4 UI shape that helper produced (``text``, ``reasoning``,
``tool-invocation``, ``file``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MERGED = "merged into an assistant message"


@dataclass
class Converted:
    """One legacy row's fate: the message it became (or None) and, if not, why."""

    row: dict[str, Any]
    message: dict[str, Any] | None = None
    outcome: str | None = None  # set when the row is not a message of its own


def _rank(row: dict[str, Any]) -> int:
    types = {p.get("type") for p in row["content"] if isinstance(p, dict)} if isinstance(row["content"], list) else ()
    if row["role"] == "assistant" and "tool-call" in types:
        return 0
    if row["role"] == "tool" and "tool-result" in types:
        return 1
    return 2 if row["role"] == "assistant" else 3


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """CoreMessage content (a string or a list of content parts) as UI parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return [{"type": "text", "text": json.dumps(content)}] if content is not None else []
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "reasoning":
            text = part.get("text", part.get("reasoning", ""))
            if text and text != "undefined":
                parts.append({"type": "reasoning", "reasoning": text, "details": [{"type": "text", "text": text}]})
        elif kind == "tool-call":
            invocation = {
                "state": "call",
                "toolCallId": part.get("toolCallId"),
                "toolName": part.get("toolName"),
                "args": part.get("args", {}),
            }
            parts.append({"type": "tool-invocation", "toolInvocation": invocation})
        elif kind in ("image", "file"):
            url = part.get("image") if kind == "image" else part.get("data")
            parts.append({"type": "file", "mediaType": part.get("mimeType") or f"{kind}/*", "url": url})
        else:
            parts.append(part)
    return parts


def _fold_results(parts: list[dict[str, Any]], content: Any) -> None:
    """Put a tool row's results into the matching tool invocations."""
    calls = {
        p["toolInvocation"].get("toolCallId"): p["toolInvocation"] for p in parts if p.get("type") == "tool-invocation"
    }
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and part.get("type") == "tool-result" and part.get("toolCallId") in calls:
            calls[part["toolCallId"]].update(state="result", result=part.get("result"))


def _dedupe(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    unique = []
    for part in parts:
        fingerprint = json.dumps(part, sort_keys=True)
        if fingerprint not in seen:
            seen.add(fingerprint)
            unique.append(part)
    return unique


def _message(row: dict[str, Any], role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "chatId": row["chatId"],
        "role": role,
        "parts": parts,
        "attachments": [],
        "createdAt": row["createdAt"],
    }


def convert_chat(rows: list[dict[str, Any]]) -> list[Converted]:
    """Rows of one chat (id, chatId, role, content, createdAt in microseconds) to messages."""
    ordered = sorted(rows, key=lambda r: (r["createdAt"], _rank(r)))
    results: list[Converted] = []
    turn: list[dict[str, Any]] = []

    def close_turn() -> None:
        if not turn:
            return
        anchor = next((r for r in turn if r["role"] == "assistant"), None)
        if anchor is None:
            results.extend(Converted(r, outcome="tool result without an assistant message: orphan") for r in turn)
        else:
            parts: list[dict[str, Any]] = []
            for row in turn:
                if row["role"] == "assistant":
                    parts.extend(_content_parts(row["content"]))
                else:
                    _fold_results(parts, row["content"])
            results.append(Converted(anchor, message=_message(anchor, "assistant", _dedupe(parts))))
            results.extend(Converted(r, outcome=f"{MERGED}: {anchor['id']}") for r in turn if r is not anchor)
        turn.clear()

    for row in ordered:
        if row["role"] in ("assistant", "tool"):
            turn.append(row)
            continue
        close_turn()
        if row["role"] in ("user", "system"):
            results.append(Converted(row, message=_message(row, row["role"], _content_parts(row["content"]))))
        else:
            results.append(Converted(row, outcome=f"invalid role: {row['role']!r}"))
    close_turn()
    return results
