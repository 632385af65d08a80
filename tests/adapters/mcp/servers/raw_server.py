"""A minimal MCP server written as plain JSON-RPC lines (no SDK): fast to start, and able to misbehave.

Tools: ``echo`` (returns its ``text``), ``garbage`` (answers with a result that
is not an object), ``noise`` (writes a line that is not JSON, then answers),
``big`` (answers with ``size`` bytes of text). Any other method is answered
with ``{"echo": method, "params": params}``, so a test can see that unknown
methods pass through the proxy.
"""

from __future__ import annotations

import json
import sys
from typing import Any

TOOLS = [
    {"name": "echo", "description": "Echo the text back.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "garbage", "description": "Answer with a malformed result.", "inputSchema": {"type": "object"}},
    {"name": "noise", "description": "Write a non-JSON line first.", "inputSchema": {"type": "object"}},
    {
        "name": "big",
        "description": "Answer with size bytes.",
        "inputSchema": {"type": "object", "properties": {"size": {"type": "integer"}}},
    },
]


def write(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def handle(msg: dict[str, Any]) -> None:
    method, params, rid = msg.get("method"), msg.get("params") or {}, msg.get("id")
    if rid is None or method is None:
        return
    if method == "initialize":
        result: Any = {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "title": "Raw test server", "version": "9.9"},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        name, args = params.get("name"), params.get("arguments") or {}
        if name == "garbage":
            write({"jsonrpc": "2.0", "id": rid, "result": 42})
            return
        if name == "noise":
            sys.stdout.write("this line is not JSON\n")
        text = "x" * int(args.get("size", 0)) if name == "big" else str(args.get("text", ""))
        result = {"content": [{"type": "text", "text": text}]}
    else:
        result = {"echo": method, "params": params}
    write({"jsonrpc": "2.0", "id": rid, "result": result})


def main() -> None:
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            handle(msg)


if __name__ == "__main__":
    main()
