"""The proxy in front of real servers from PyPI (mcp-server-time, mcp-server-git), driven by a real client."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import anyio
import mcp_types as types
from mcp_helpers import POLICIES, proxy_session, run_tether, venv_bin

from tether import Policy, SQLiteStore
from tether.cli._approvals import pending_approvals
from tether.events import ResultRecorded


def _events(db: Path) -> list[Any]:
    with SQLiteStore(db) as store:
        return [item.event() for s in store.sessions() if not s.session_id.startswith("mcp-pins:") for item in store.read(s.session_id)]


def _time_args(db: Path, *extra: str) -> list[str]:
    return ["--policy", str(POLICIES / "time.yaml"), "--db", str(db), *extra, "--", venv_bin("mcp-server-time")]


def test_allow_deny_and_ask_through_elicitation(tmp_path: Path, errlog: TextIO) -> None:
    db = tmp_path / "t.db"
    asked: list[str] = []

    async def elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        approve = "Europe/Paris" in params.message
        return types.ElicitResult(action="accept", content={"approve": approve})

    async def scenario() -> None:
        # The task names UTC: otherwise the output echoes a value the user never gave, and is untrusted.
        async with proxy_session(_time_args(db, "--task", "What time is it in UTC?"), errlog, elicitation=elicit) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"get_current_time", "convert_time"}
            ok = await client.call_tool("get_current_time", {"timezone": "UTC"})
            assert not ok.is_error and "UTC" in ok.content[0].text
            bad = await client.call_tool("get_current_time", {"timezone": "UTC", "extra": 1})
            assert bad.is_error and "unexpected argument 'extra'" in bad.content[0].text
            approved = await client.call_tool(
                "convert_time", {"source_timezone": "UTC", "time": "10:00", "target_timezone": "Europe/Paris"}
            )
            assert not approved.is_error and "Europe/Paris" in approved.content[0].text
            refused = await client.call_tool("convert_time", {"source_timezone": "UTC", "time": "10:00", "target_timezone": "Asia/Tokyo"})
            assert refused.is_error and "did not approve" in refused.content[0].text

    anyio.run(scenario)
    assert len(asked) == 2
    events = _events(db)
    answers = [(e.approved, e.by) for e in events if e.kind == "approval_answered"]
    assert answers == [(True, "mcp-elicitation"), (False, "mcp-elicitation")]
    labels = [e.label.integrity for e in events if isinstance(e, ResultRecorded)]
    assert labels == ["trusted", "untrusted"]  # get_current_time is trusted by the policy, convert_time is not
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


def test_ask_answered_with_tether_approvals(tmp_path: Path, errlog: TextIO) -> None:
    db = tmp_path / "t.db"
    policy = str(POLICIES / "time.yaml")
    answered: list[str] = []

    def human() -> None:
        for _ in range(200):
            if db.exists():
                with SQLiteStore(db) as store:
                    pending = pending_approvals(store)
                if pending:
                    listing = run_tether("approvals", "list", "--db", str(db))
                    assert pending[0].call_id in listing.stdout
                    out = run_tether("approvals", "approve", pending[0].call_id[:10], "--db", str(db), "--policy", policy, "--by", "ana")
                    answered.append(out.stdout)
                    return
            time.sleep(0.05)

    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with proxy_session(_time_args(db), errlog) as client:  # no elicitation support
            worker = threading.Thread(target=human)
            worker.start()
            first = await client.call_tool("convert_time", {"source_timezone": "UTC", "time": "09:30", "target_timezone": "Europe/Paris"})
            worker.join()
            started = time.monotonic()
            second = await client.call_tool("convert_time", {"source_timezone": "UTC", "time": "09:31", "target_timezone": "Europe/Paris"})
            assert 1.5 < time.monotonic() - started < 6  # nobody answers: the 2 s approval timeout denies
            return first, second

    first, second = anyio.run(scenario)
    assert answered and "approved by ana" in answered[0]
    assert not first.is_error and "Europe/Paris" in first.content[0].text
    assert second.is_error and "timed out" in second.content[0].text
    by = [e.by for e in _events(db) if e.kind == "approval_answered"]
    assert by == ["ana", "timeout"]
    assert run_tether("audit", "verify", "--db", str(db)).returncode == 0


def test_git_server_reads_allowed_writes_denied(tmp_path: Path, errlog: TextIO) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("hello\n")
    policy = tmp_path / "git.yaml"
    policy.write_text(
        (POLICIES / "git.yaml").read_text().replace("REPO", str(repo)),
    )
    Policy.from_file(policy)
    db = tmp_path / "t.db"
    args = ["--policy", str(policy), "--db", str(db), "--", venv_bin("mcp-server-git"), "--repository", str(repo)]

    async def scenario() -> None:
        async with proxy_session(args, errlog) as client:
            status = await client.call_tool("git_status", {"repo_path": str(repo)})
            assert not status.is_error and "a.txt" in status.content[0].text
            elsewhere = await client.call_tool("git_status", {"repo_path": "/etc"})
            assert elsewhere.is_error and "Tether denied" in elsewhere.content[0].text
            add = await client.call_tool("git_add", {"repo_path": str(repo), "files": ["a.txt"]})
            assert add.is_error and "is not named in policy" in add.content[0].text

    anyio.run(scenario)
    verdicts = [e.verdict for e in _events(db) if e.kind == "decision"]
    assert verdicts == ["allow", "deny", "deny"]
    assert subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--name-only"], capture_output=True, text=True).stdout == ""


def test_policy_init_writes_a_loadable_starting_policy(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    done = run_tether("mcp", "policy-init", "-o", str(out), "--", venv_bin("mcp-server-time"))
    assert done.returncode == 0, done.stderr
    policy = Policy.from_file(out)
    protocol = {"resources/read", "resources/subscribe", "resources/unsubscribe", "prompts/get", "completion/complete", "roots/list"}
    protocol |= {"sampling/createMessage", "elicitation/create"}
    assert set(policy.spec.tools) == {"get_current_time", "convert_time", *protocol}  # the data paths are named too
    for name, tool in policy.spec.tools.items():
        assert tool.ask and tool.ask[0].when.always
        assert tool.effect == "write" or name in protocol
    assert policy.spec.tools["convert_time"].args["time"].required
    assert "readOnlyHint" in out.read_text()  # shown as a comment, not trusted
    denied = run_tether("mcp", "policy-init", "--default", "deny", "--", venv_bin("mcp-server-time"))
    assert json.dumps("deny-get_current_time")[1:-1] in denied.stdout
