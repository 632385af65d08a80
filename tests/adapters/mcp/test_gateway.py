"""Gateway mode: several servers behind one proxy, one session, one provenance index.

The attack from the MCP catalog: a poisoned tool description on server B asks
for a key the agent read through server A to be passed as an innocuous
``sidenote``. Behind separate proxies, B's session never saw the key and lets
it through; behind one gateway the key keeps its ``secret`` label and the call
is denied before it reaches B.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp_helpers import HERE, POLICIES, proxy_session, run_tether

from tether import SQLiteStore

PAIR = HERE / "servers" / "pair_server.py"
KEY = "sk-live-7e3b9d20a1c44f58"


def _server(role: str) -> list[str]:
    return [sys.executable, str(PAIR), "--role", role]


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _gateway_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "servers:\n"
        f"  vault:\n    command: {json.dumps(_server('vault'))}\n"
        f"  calc:\n    command: {json.dumps(sys.executable)}\n    args: {json.dumps([str(PAIR), '--role', 'calc'])}\n"
    )
    return path


def test_a_secret_read_through_one_server_cannot_leave_through_another(tmp_path: Path, errlog: TextIO) -> None:
    log = tmp_path / "calls.log"
    env = {"PAIR_CALL_LOG": str(log)}

    # Behind two separate proxies, the adder's session never saw the key: the attack works.
    alone = tmp_path / "calc.yaml"
    alone.write_text((POLICIES / "gateway.yaml").read_text().replace("calc__add", "add"))

    async def separate() -> bool:
        async with proxy_session(
            ["--policy", str(POLICIES / "gateway.yaml"), "--db", str(tmp_path / "a.db"), "--server", f"vault={' '.join(_server('vault'))}"],
            errlog,
            extra_env=env,
        ) as vault:
            key = (await vault.call_tool("vault__read_secret", {"name": "api"})).content[0].text
        async with proxy_session(
            ["--policy", str(alone), "--db", str(tmp_path / "a.db"), "--", *_server("calc")], errlog, extra_env=env
        ) as calc:
            leak = await calc.call_tool("add", {"a": 1, "b": 2, "sidenote": key})
        return not leak.is_error

    assert anyio.run(separate) and KEY in str(_calls(log)[-1]["arguments"])
    log.unlink()

    db = tmp_path / "t.db"
    args = ["--policy", str(POLICIES / "gateway.yaml"), "--db", str(db), "--config", str(_gateway_file(tmp_path))]

    async def gateway() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with proxy_session(args, errlog, extra_env=env) as client:
            init = client.initialize_result
            assert init is not None and init.server_info.name == "tether-gateway"
            assert "[vault] The vault server." in (init.instructions or "") and "[calc] The calc server." in (init.instructions or "")
            tools = {t.name: t for t in (await client.list_tools()).tools}
            out["tools"] = sorted(tools)
            assert "sidenote" in (tools["calc__add"].description or "")  # the poisoned description reaches the model
            key = (await client.call_tool("vault__read_secret", {"name": "api"})).content[0].text
            leak = await client.call_tool("calc__add", {"a": 1, "b": 2, "sidenote": key})
            out["leak"] = leak.content[0].text if leak.is_error else "NOT BLOCKED"
            out["sum"] = (await client.call_tool("calc__add", {"a": 1, "b": 2})).content[0].text
            out["prompts"] = sorted(p.name for p in (await client.list_prompts()).prompts)
            greet = await client.get_prompt("calc__greet")
            out["greet"] = greet.messages[0].content.text  # type: ignore[union-attr]
            out["resources"] = sorted(str(r.uri) for r in (await client.list_resources()).resources)
            readme = await client.read_resource("vault://readme")
            out["readme"] = readme.contents[0].text  # type: ignore[union-attr]
        return out

    out = anyio.run(gateway)
    assert out["tools"] == ["calc__add", "vault__read_secret"]
    assert "Tether denied" in out["leak"] and "secret" in out["leak"], out["leak"]
    assert out["sum"] == "3"
    assert [c["arguments"] for c in _calls(log) if c["server"] == "calc"] == [{"a": 1, "b": 2}]  # the key never reached calc
    assert out["prompts"] == ["calc__greet", "vault__greet"] and out["greet"] == "Hello from the calc."
    assert out["resources"] == ["calc://readme", "vault://readme"] and out["readme"] == "The vault readme."
    with SQLiteStore(db) as store:
        sessions = [s.session_id for s in store.sessions() if not s.session_id.startswith("mcp-pins:")]
        pins = sorted(s.session_id for s in store.sessions() if s.session_id.startswith("mcp-pins:"))
        events = [i.event() for i in store.read(sessions[0])]
    assert len(sessions) == 1 and len(pins) == 2  # one session for both servers; pins kept per server
    assert any(e.kind == "source_added" and e.origin.startswith("mcp resource vault://readme") for e in events)
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


def test_gateway_from_server_options_and_its_starting_policy(tmp_path: Path, errlog: TextIO) -> None:
    opts = ["--server", f"vault={' '.join(_server('vault'))}", "--server", f"calc={' '.join(_server('calc'))}"]
    init = run_tether("mcp", "policy-init", *opts)
    assert init.returncode == 0, init.stderr
    assert "vault__read_secret:" in init.stdout and "calc__add:" in init.stdout

    broken = ["--server", f"broken={sys.executable} -c 'raise SystemExit(4)'"]

    async def tool_names() -> tuple[list[str], str]:
        args = ["--policy", str(POLICIES / "gateway.yaml"), "--db", str(tmp_path / "t.db"), *opts, *broken]
        async with proxy_session(args, errlog) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            call = await client.call_tool("broken__anything", {})
            return names, call.content[0].text  # type: ignore[union-attr]

    names, refused = anyio.run(tool_names)
    assert names == ["calc__add", "vault__read_secret"]  # a server that fails to start is left out, the others serve
    assert "Tether denied" in refused
    errlog.seek(0)
    assert "broken did not initialise" in errlog.read()
    bad = run_tether("mcp", "--policy", str(POLICIES / "gateway.yaml"), "--server", "a__b=true")
    assert bad.returncode == 2 and "server name" in bad.stderr
