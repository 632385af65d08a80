"""Fail closed: bad input, broken detectors, internal errors and store failures deny with a reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tether import Finding, Guard, Policy, SessionError, SQLiteStore, StoreError, ToolCall
from tether.events import SessionEnded
from tether.monitor import SessionState

FIX = Path(__file__).parents[1] / "fixtures"


def session(**kw: Any) -> Any:
    guard = Guard(Policy.from_file(FIX / "rules.yaml"), SQLiteStore(":memory:"), **kw)
    return guard.start_session("task")


BAD_ARGS = [
    ("not a dict", ["a", "b"]),
    ("huge string", {"channel": "general", "text": "x" * 10_000_000}),
    ("deep nesting", {"channel": "general", "text": "x", "n": __import__("functools").reduce(lambda acc, _: [acc], range(500), [])}),
    ("object", {"channel": "general", "text": object()}),
    ("nan", {"channel": "general", "text": float("nan")}),
    ("neg inf", {"channel": "general", "text": float("-inf")}),
    ("surrogates", {"channel": "general", "text": b"\xff\xfe".decode("utf-8", "surrogateescape")}),
    ("huge int", {"channel": "general", "text": 10**400}),
    ("wide list", {"channel": "general", "text": ["x"] * 2_000_000}),
]


@pytest.mark.parametrize(("name", "args"), BAD_ARGS, ids=[b[0] for b in BAD_ARGS])
def test_bad_arguments_deny_and_are_logged(name: str, args: Any) -> None:
    s = session()
    d = s.check(ToolCall("post_message", args))
    assert d.verdict == "deny", d.explain()
    assert d.reasons and d.reasons[0].message
    # (a call of several MB is followed by a snapshot: the session takes one every few MB logged)
    kinds = [e.event().kind for e in s.guard.store.read(s.id) if e.event().kind != "snapshot_taken"]
    assert kinds[-2:] == ["call_proposed", "decision"]
    assert s.guard.store.verify().ok


def test_cyclic_arguments() -> None:
    s = session()
    cyc: list[Any] = []
    cyc.append(cyc)
    assert s.check("post_message", {"channel": "general", "text": cyc}).verdict == "deny"


def test_non_string_tool_name() -> None:
    s = session()
    assert s.check(ToolCall(None, {})).verdict == "deny"  # type: ignore[arg-type]


class Exploding:
    name = "exploding"

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        raise RuntimeError("model server down")


class Suspicious:
    name = "suspicious"

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        return Finding("ask", "looks odd")


class Loosening:
    name = "loosening"

    def inspect(self, call: ToolCall, state: SessionState) -> Finding | None:
        return Finding("allow", "trust me")  # type: ignore[arg-type]


def test_detector_errors_deny() -> None:
    d = session(detectors=[Exploding()]).check("fetch", {"url": "https://docs.example/"})
    assert d.verdict == "deny" and d.reasons[0].kind == "detector"


def test_detectors_only_tighten() -> None:
    s = session(detectors=[Suspicious(), Loosening()])
    assert s.check("fetch", {"url": "https://docs.example/"}).verdict == "ask"
    assert s.check("rm", {}).verdict == "deny"  # never loosened


def test_internal_error_denies(monkeypatch: pytest.MonkeyPatch) -> None:
    s = session()

    def boom(*a: Any) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr("tether.monitor._decide.validate_arg", boom)
    d = s.check("fetch", {"url": "https://docs.example/"})
    assert d.verdict == "deny" and d.reasons[0].kind == "error" and "ZeroDivisionError" in d.reasons[0].message


class BrokenStore(SQLiteStore):
    fail = False

    def append(self, *a: Any, **k: Any) -> Any:
        if self.fail:
            raise StoreError("disk full")
        return super().append(*a, **k)


def test_store_failure_denies_and_sticks() -> None:
    store = BrokenStore(":memory:")
    guard = Guard(Policy.from_file(FIX / "rules.yaml"), store)
    s = guard.start_session("task")
    store.fail = True
    d = s.check("fetch", {"url": "https://docs.example/"})
    assert d.verdict == "deny" and "disk full" in d.explain()
    store.fail = False
    d = s.check("fetch", {"url": "https://docs.example/"})
    assert d.verdict == "deny" and "resumed" in d.explain()
    # A fresh session object rebuilt from the log works again.
    assert guard.resume_session(s.id).check("fetch", {"url": "https://docs.example/"}).allowed


def test_unopenable_store(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path / "dir.db")


def test_store_locked_is_store_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = SQLiteStore(path, timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError):
        store.append("s", [SessionEnded(session_id="s")])
    other.execute("ROLLBACK")


def test_record_result_with_weird_output() -> None:
    s = session()
    d = s.check("fetch", {"url": "https://docs.example/"})
    s.record_result(d.call_id, {"a": [1, None, True, b"\xff", float("nan")], "b": "\udcff"})
    assert s.context.untrusted
    # A result for a call the session never allowed is refused, and nothing is logged.
    with pytest.raises(SessionError, match="not a call"):
        s.record_result("no-such-call", "unexpected")
    denied = s.check("nope", {})
    with pytest.raises(SessionError, match="not allowed to run"):
        s.record_result(denied.call_id, "ran anyway")
    with pytest.raises(SessionError, match="already recorded"):
        s.record_result(d.call_id, "twice")
    assert s.guard.store.verify().ok
