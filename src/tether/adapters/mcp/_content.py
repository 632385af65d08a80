"""MCP content as the text the model reads: what the proxy labels, indexes and shows in refusals."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tether.flow import walk_leaves


def tool_error(text: str) -> dict[str, Any]:
    """A ``tools/call`` result that tells the agent the call failed, and why."""
    return {"content": [{"type": "text", "text": text}], "isError": True}


def result_text(result: Mapping[str, Any]) -> str:
    """The text of a tool result that is labelled and indexed (what the model will read)."""
    parts = [block_text(b) for b in result.get("content") or () if isinstance(b, dict)]
    if result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"], ensure_ascii=False, sort_keys=True))
    return "\n".join(parts)


def block_text(block: Mapping[str, Any]) -> str:
    """The readable text of one content block (a placeholder for binary content)."""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "resource":
        res = block.get("resource")
        res = res if isinstance(res, dict) else {}
        return str(res["text"]) if "text" in res else f"[resource {res.get('uri', '')}]"
    if kind == "resource_link":
        return f"[resource link {block.get('uri', '')} {block.get('name', '')} {block.get('description') or ''}]"
    return f"[{kind} {block.get('mimeType', '')}]"


def error_text(err: Mapping[str, Any]) -> str:
    """The text of a JSON-RPC error the model may read."""
    data = err.get("data")
    extra = "" if data is None else " " + json.dumps(data, ensure_ascii=False, default=str)[:4000]
    return f"error {err.get('code')}: {err.get('message', '')}{extra}"


def is_task(result: Mapping[str, Any]) -> bool:
    """True for a task-augmented call's first answer (``CreateTaskResult``): the result comes later."""
    return isinstance(result.get("task"), dict) and "content" not in result


def sampling_text(params: Mapping[str, Any]) -> str:
    """The text of a server's sampling request that the model reads (system prompt and messages)."""
    parts: list[str] = []
    if isinstance(params.get("systemPrompt"), str):
        parts.append(params["systemPrompt"])
    for message in params.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        blocks = content if isinstance(content, list) else [content]
        parts.extend(block_text(b) for b in blocks if isinstance(b, dict))
    return "\n".join(parts)


def contents_text(result: Mapping[str, Any]) -> str:
    """The text of a ``resources/read`` result (a placeholder for binary contents)."""
    texts = []
    for item in result.get("contents") or ():
        if isinstance(item, dict):
            texts.append(str(item["text"]) if "text" in item else f"[binary resource {item.get('uri', '')}]")
    return "\n".join(texts)


def prompt_text(result: Mapping[str, Any]) -> str:
    """The text of a ``prompts/get`` result: its description and messages."""
    parts = [str(result.get("description") or "")]
    for message in result.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, dict):
            parts.append(block_text(content))
    return "\n".join(p for p in parts if p)


def listing_text(result: Mapping[str, Any]) -> str:
    """Every string in a listing or status answer as ``path: value`` lines (names, titles, descriptions,
    URIs, status messages...): the model may read any of them, so all are indexed unescaped."""
    leaves: list[tuple[str, Any]] = []
    walk_leaves({k: v for k, v in result.items() if k not in ("nextCursor", "_meta")}, "", leaves)
    return "\n".join(f"{path.lstrip('.')}: {value}" for path, value in leaves if isinstance(value, str) and value)
