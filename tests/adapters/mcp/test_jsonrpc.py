"""JSON-RPC robustness: every request gets an answer, whatever the client (or the server) sends.

Malformed JSON is answered with -32700, invalid shapes with -32600 (or -32602
for params), over-long lines with an error that carries the request's id when
it can be read from the line's edges, and the proxy keeps serving. Unknown
methods pass to the server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp_helpers import HERE, POLICIES, RawClient

from tether.adapters.mcp import Malformed, Message, parse, recover_id

RAW = HERE / "servers" / "raw_server.py"


def _args(db: Path, *extra: str) -> list[str]:
    return ["--policy", str(POLICIES / "raw.yaml"), "--db", str(db), *extra, "--", sys.executable, str(RAW)]


@pytest.mark.parametrize(
    ("line", "code", "id_"),
    [
        (b"{this is not json", -32700, None),
        (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{bad', -32700, 7),
        (b'{"method":"tools/call","params":{"a":[1,2}},"jsonrpc":"2.0","id":"abc"}', -32700, "abc"),
        (b'\xff\xfe{"jsonrpc":"2.0","id":1}', -32700, 1),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"t":"\\ud800"}}', -32700, 1),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600, 1),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]', -32600, None),
        (b"[]", -32600, None),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":3,"method":42}', -32600, 3),
        (b'{"jsonrpc":"2.0","id":3,"method":""}', -32600, 3),
        (b'{"jsonrpc":"1.0","id":3,"method":"ping"}', -32600, 3),
        (b'{"id":3,"method":"ping"}', -32600, 3),
        (b'{"jsonrpc":"2.0","id":3,"method":"ping","params":[1]}', -32602, 3),
        (b'{"jsonrpc":"2.0","id":3,"method":"ping","result":{}}', -32600, 3),
        (b'{"jsonrpc":"2.0","id":3}', -32600, 3),
        (b"42", -32600, None),
        (b'"ping"', -32600, None),
        (b"null", -32600, None),
    ],
)
def test_malformed_lines_are_answered(line: bytes, code: int, id_: Any) -> None:
    parsed = parse(line)
    assert isinstance(parsed, Malformed) and parsed.answer
    assert (parsed.code, parsed.id) == (code, id_)


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc":"2.0","method":"notifications/x","params":[1]}',  # a notification is never answered
        b'{"jsonrpc":"2.0","id":{"x":1},"result":{}}',  # nor is a response
        b'{"jsonrpc":"2.0","id":4,"result":{},"error":{"code":1,"message":"m"}}',
        b'{"jsonrpc":"2.0","id":4,"error":{"code":"1","message":"m"}}',
    ],
)
def test_malformed_notifications_and_responses_are_dropped_silently(line: bytes) -> None:
    parsed = parse(line)
    assert isinstance(parsed, Malformed) and not parsed.answer


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', "request"),
        (b'{"jsonrpc":"2.0","id":"a","method":"x","params":{}}', "request"),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"x"}', "request"),
        (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', "notification"),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}', "response"),
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}', "response"),
    ],
)
def test_well_formed_lines(line: bytes, kind: str) -> None:
    parsed = parse(line)
    assert isinstance(parsed, Message) and parsed.kind == kind
    assert parse(b"   ") is None


@pytest.mark.parametrize(
    ("head", "tail", "want"),
    [
        (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"a":"xx', b"", 5),
        (b'{"id":"q\\"1","jsonrpc":"2.0","params":{', b"", 'q"1'),
        (b'{"method":"tools/call","params":{"arguments":{"t":"', b'xxxx"}},"jsonrpc":"2.0","id":12}', 12),
        (b'{"params":{"id":3,"x":1', b'"}},"jsonrpc":"2.0"}', None),
        (b'{"params":{"a":1', b'"x":{"id":3}}}', None),
        (b"", b'"t":"foo,\\"id\\":9}"}', None),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"x"', b"", None),
    ],
)
def test_ids_are_recovered_only_from_the_outermost_object(head: bytes, tail: bytes, want: Any) -> None:
    assert recover_id(head, tail) == want


def test_the_proxy_answers_bad_input_and_keeps_serving(tmp_path: Path) -> None:
    client = RawClient(_args(tmp_path / "t.db"))
    try:
        client.send({"jsonrpc": "2.0", "id": "early", "method": "tools/list"})
        assert client.answer("early")["error"]["code"] == -32600  # before initialize
        init = client.initialize()
        assert init["serverInfo"] == {"name": "raw", "title": "Raw test server", "version": "9.9"}
        client.send(b"{this is not json")
        assert client.read()["error"]["code"] == -32700
        client.send(b'{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":')
        assert client.answer(21)["error"]["code"] == -32700
        client.send([{"jsonrpc": "2.0", "id": 22, "method": "ping"}])
        assert client.answer(22)["error"]["code"] == -32600
        client.send({"jsonrpc": "2.0", "id": {"obj": 1}, "method": "ping"})
        assert client.answer(None)["error"]["code"] == -32600
        client.send({"jsonrpc": "2.0", "method": "notifications/whatever", "params": [1, 2]})  # dropped, no answer
        client.send({"jsonrpc": "2.0", "id": 23, "method": "vendor/custom", "params": {"k": "v"}})
        assert client.read()["error"]["code"] == -32601  # a method Tether does not know is refused, not relayed
        client.send({"jsonrpc": "2.0", "id": 24, "method": "server/discover", "params": {}})
        assert client.answer(24)["error"]["code"] == -32601  # modern-era probes fall back to initialize
        big = "y" * (20 << 20)
        client.send({"jsonrpc": "2.0", "id": 25, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": big}}})
        err = client.answer(25, timeout=60)["error"]
        assert err["code"] == -32600 and "exceeds" in err["message"]
        # The TypeScript SDK writes the id last; it is still found.
        line = json.dumps({"method": "tools/call", "params": {"name": "echo", "arguments": {"text": big}}, "jsonrpc": "2.0", "id": "ts"})
        client.send(line)
        assert client.answer("ts", timeout=60)["error"]["code"] == -32600
        client.send({"jsonrpc": "2.0", "id": 26, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "still here"}}})
        assert client.answer(26)["result"]["content"][0]["text"] == "still here"
        client.send({"jsonrpc": "2.0", "id": 27, "method": "tools/call", "params": {"name": 5}})
        assert client.answer(27)["error"]["code"] == -32602
        slow = {"jsonrpc": "2.0", "id": 28, "method": "tools/call", "params": {"name": "big", "arguments": {"size": 8 << 20}}}
        client.send(slow)
        client.send(slow)  # the same id while the first is still in flight
        answers = [client.answer(28, timeout=60), client.answer(28, timeout=60)]
        assert sorted("error" in a for a in answers) == [False, True]
    finally:
        assert client.close() == 0


def test_a_misbehaving_server_never_leaves_the_client_waiting(tmp_path: Path) -> None:
    client = RawClient(_args(tmp_path / "t.db"))
    try:
        client.initialize()
        client.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "garbage", "arguments": {}}})
        assert client.answer(1)["error"]["code"] == -32603  # the server's result was not an object
        client.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "noise", "arguments": {}}})
        assert client.answer(2)["result"]["content"][0]["text"] == ""  # a stray line from the server is dropped
        client.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "big", "arguments": {"size": 3 << 20}}})
        assert len(client.answer(3, timeout=60)["result"]["content"][0]["text"]) == 3 << 20
    finally:
        assert client.close() == 0
