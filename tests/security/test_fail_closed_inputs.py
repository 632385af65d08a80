"""Hostile input through the Python API: it is refused for that call only, and nothing else escapes.

Every public entry point (``Session.check``, ``record_result``, ``Guard.start_session``,
``add_source``, ``answer``, ``control``) is fed values an agent or a careless integrator
could hand it: lone surrogates, objects whose ``__str__``/``__repr__``/``__hash__``/``__bool__``
raise, integers past Python's 4,300-digit string limit, bytes, cyclic and very deep
structures. After each one:

* no exception escapes but the documented typed ones (:class:`tether.errors.TetherError`);
* no decision carries an internal-error reason (kind ``error``, rule ``guard``): a crash
  that was turned into a deny is still a crash;
* the session keeps working: an ordinary call right after is allowed;
* the store's chains still verify.

A gap found later is pinned in ``KNOWN`` as ``xfail(strict=True)``, naming what escapes;
it turns into a failure (XPASS) the day it is fixed, so the marker gets removed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_scenarios import BANK

from tether import Decision, Guard, Policy, SQLiteStore, ToolCall
from tether.errors import TetherError
from tether.flow import Label
from tether.session import Session

POLICY = Policy.from_file(BANK)
NORMAL = ("read_inbox", {"folder": "inbox"})


# --------------------------------------------------------------------------- hostile values


class RaisingStr:
    """Every way of turning it into text raises."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ refused")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ refused")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("__format__ refused")


class RaisingHashStr(str):
    """A str whose hash raises (dict lookups, sets)."""

    def __hash__(self) -> int:
        raise RuntimeError("__hash__ refused")


class RaisingBool:
    """Truth testing raises."""

    def __bool__(self) -> bool:
        raise RuntimeError("__bool__ refused")


class RaisingEq:
    """Comparison raises."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ refused")

    __hash__ = object.__hash__


class LyingStr(str):
    """A str that says it is something else when asked."""

    def __str__(self) -> str:
        return "read_inbox"


def _cyclic_list() -> list[Any]:
    x: list[Any] = [1]
    x.append(x)
    return x


def _cyclic_dict() -> dict[str, Any]:
    x: dict[str, Any] = {"a": 1}
    x["self"] = x
    return x


def _deep(depth: int = 20_000) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


MAKERS: dict[str, Callable[[], Any]] = {
    "lone-surrogate": lambda: "inbox\ud800",
    "lone-surrogate-after-non-ascii": lambda: "caf\xe9\ud800",
    "raising-str": RaisingStr,
    "raising-hash-str": lambda: RaisingHashStr("read_inbox"),
    "raising-bool": RaisingBool,
    "raising-eq": RaisingEq,
    "lying-str": lambda: LyingStr("send_money"),
    "huge-int": lambda: 10**5000,
    "bytes": lambda: b"\xff\xfe\x00inbox",
    "cyclic-list": _cyclic_list,
    "cyclic-dict": _cyclic_dict,
    "deep-list": _deep,
    "nan": lambda: float("nan"),
    "none": lambda: None,
    "set": lambda: {1, 2},
    "tuple-key-dict": lambda: {(1, 2): 3},
    "raising-key-dict": lambda: {RaisingStr(): 1},
}


@dataclass(frozen=True)
class Token:
    """A hostile value in a recipe (built inside the test, so hypothesis can print the example)."""

    kind: str


def build(recipe: Any) -> Any:
    """Turn a recipe (plain data with :class:`Token` leaves) into the hostile value it describes."""
    if isinstance(recipe, Token):
        return MAKERS[recipe.kind]()
    if isinstance(recipe, list):
        return [build(v) for v in recipe]
    if isinstance(recipe, tuple):
        return tuple(build(v) for v in recipe)
    if isinstance(recipe, dict):
        return {build(k): build(v) for k, v in recipe.items()}
    return recipe


def tokens(*exclude: str) -> st.SearchStrategy[Token]:
    return st.sampled_from([k for k in MAKERS if k not in exclude]).map(Token)


texts = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=24)
# Tool names and call ids: any text, lone surrogates (alone, after ASCII or after other characters) included.
names = st.one_of(st.text(max_size=24), st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=24))


def plain_values(text: st.SearchStrategy[str] = texts) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text, st.binary(max_size=12))


plain = plain_values()
# Dict keys must be hashable when the recipe is built: no lists, and no key whose hash raises.
keys = st.one_of(texts, st.integers(), st.sampled_from(["raising-str", "raising-eq", "lying-str", "huge-int", "nan"]).map(Token))


def recipes(*exclude: str, text: st.SearchStrategy[str] = texts) -> st.SearchStrategy[Any]:
    """Plain values, hostile tokens and containers of both, in about equal shares
    (``st.recursive`` alone draws containers almost every time)."""
    scalar = plain_values(text).map(lambda x: x)  # mapped, so one_of does not flatten its branches and drown the tokens
    leaves = st.one_of(scalar, tokens(*exclude))
    nested = st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=10,
    )
    return st.one_of(scalar, tokens(*exclude), nested)


# --------------------------------------------------------------------------- the checks


@dataclass
class Live:
    """A fresh session with an allowed call awaiting its result and a call awaiting approval."""

    guard: Guard
    session: Session
    allowed_call: str
    pending_call: str


def live() -> Live:
    guard = Guard(POLICY, SQLiteStore(":memory:"))
    session = guard.start_session("Handle my inbox", principal="ana")
    read = session.check(*NORMAL)
    session.record_result(read.call_id, "From boss: please send the quarterly report to ops-team@company.com today")
    ask = session.check("send_email", {"to": ["ops-team@company.com"], "body": "Quarterly report attached."})
    allowed = session.check(*NORMAL)
    assert (read.verdict, ask.verdict, allowed.verdict) == ("allow", "ask", "allow")
    return Live(guard, session, allowed.call_id, ask.call_id)


def problems(world: Live, call: Callable[[], Any]) -> list[str]:
    """Run one hostile call; return what went wrong (empty: it was handled)."""
    found: list[str] = []
    try:
        result = call()
    except TetherError:
        result = None
    except BaseException as exc:
        return [f"{type(exc).__name__} escaped: {_text(exc)}"]
    if isinstance(result, Decision) and any(r.kind == "error" and r.rule == "guard" for r in result.reasons):
        found.append(f"internal error turned into a deny: {result.reasons}")
    session = world.session
    if session.state.status == "paused":
        session.control("resume", by="test")
    after = session.check(*NORMAL)
    if after.verdict != "allow":
        found.append(f"the next ordinary call was {after.verdict}: {[r.message for r in after.reasons]}")
    report = world.guard.store.verify()
    if not report.ok:
        found.append(f"store no longer verifies: {report.problem}")
    return found


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:160]
    except Exception:
        return "<unprintable>"


# --------------------------------------------------------------------------- property tests (the paths that hold)

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(tool=recipes("raising-hash-str", "lone-surrogate-after-non-ascii", text=names), wrapped=st.booleans())
def test_check_tool(tool: Any, wrapped: bool) -> None:
    world = live()
    t = build(tool)
    call = (
        (lambda: world.session.check(ToolCall(t, {"folder": "inbox"})))
        if wrapped
        else (lambda: world.session.check(t, {"folder": "inbox"}))
    )
    assert problems(world, call) == []


@FUZZ
@given(args=recipes(), as_value=st.booleans())
def test_check_args(args: Any, as_value: bool) -> None:
    world = live()
    a = build(args)
    assert problems(world, lambda: world.session.check("read_inbox", {"folder": a} if as_value else a)) == []


@FUZZ
@given(call_id=recipes("raising-hash-str", "lone-surrogate-after-non-ascii", text=names))
def test_check_call_id(call_id: Any) -> None:
    world = live()
    i = build(call_id)
    assert problems(world, lambda: world.session.check(ToolCall("read_inbox", {"folder": "inbox"}, i))) == []


@FUZZ
@given(
    tool=recipes("raising-hash-str", "lone-surrogate-after-non-ascii", text=names),
    args=recipes(),
    call_id=recipes("raising-hash-str", "lone-surrogate-after-non-ascii", text=names),
)
def test_check_everything_at_once(tool: Any, args: Any, call_id: Any) -> None:
    world = live()
    t, a, i = build(tool), build(args), build(call_id)
    assert problems(world, lambda: world.session.check(ToolCall(t, a, i))) == []


@FUZZ
@given(output=recipes(), error=st.booleans())
def test_record_result_output(output: Any, error: bool) -> None:
    world = live()
    labels: list[Label] = []
    assert problems(world, lambda: labels.append(world.session.record_result(world.allowed_call, build(output), error=error))) == []
    assert len(labels) == 1, "a hostile output of an allowed call is recorded (as a notice), not refused"
    assert world.session.state.calls[world.allowed_call].result_event is not None


@FUZZ
@given(call_id=st.one_of(texts, st.integers(-(10**6), 10**6), st.none(), st.binary(max_size=8)), output=recipes())
def test_record_result_for_calls_that_did_not_run(call_id: Any, output: Any) -> None:
    world = live()
    for target in (call_id, world.pending_call):
        with pytest.raises(TetherError):
            world.session.record_result(target, build(output))
    assert problems(world, lambda: None) == []


@FUZZ
@given(task=recipes(), principal=recipes())
def test_start_session(task: Any, principal: Any) -> None:
    world = live()
    started: list[Session] = []
    assert problems(world, lambda: started.append(world.guard.start_session(build(task), principal=build(principal)))) == []
    for session in started:
        assert session.check(*NORMAL).verdict == "allow"


@FUZZ
@given(text=recipes())
def test_add_source(text: Any) -> None:
    world = live()
    assert problems(world, lambda: world.session.add_source(build(text))) == []


@FUZZ
@given(call_id=st.one_of(texts, st.integers(-(10**6), 10**6), st.none()), approved=st.booleans(), by=st.text(max_size=20))
def test_answer(call_id: Any, approved: bool, by: str) -> None:
    world = live()
    assert problems(world, lambda: world.session.answer(call_id, approved, by=by)) == []
    assert problems(world, lambda: world.session.answer(world.pending_call, approved, by=by, note=by)) == []


@FUZZ
@given(action=st.one_of(texts, st.integers(), st.none()), by=st.text(max_size=20), note=st.text(max_size=20))
def test_control(action: Any, by: str, note: str) -> None:
    world = live()
    assert problems(world, lambda: world.session.control(action, by=by, note=note)) == []
    assert problems(world, lambda: world.session.control("pause", by=by, note=note)) == []


# --------------------------------------------------------------------------- every parameter, every hostile kind

Call = Callable[[Live, Any], Any]

PARAMETERS: dict[str, Call] = {
    "check.tool": lambda w, v: w.session.check(v, {"folder": "inbox"}),
    "check.args": lambda w, v: w.session.check("read_inbox", v),
    "check.arg_value": lambda w, v: w.session.check("read_inbox", {"folder": v}),
    "check.call_id": lambda w, v: w.session.check(ToolCall("read_inbox", {"folder": "inbox"}, v)),
    "record_result.output": lambda w, v: w.session.record_result(w.allowed_call, v),
    "record_result.call_id": lambda w, v: w.session.record_result(v, "output"),
    "record_result.error": lambda w, v: w.session.record_result(w.allowed_call, "output", error=v),
    "start_session.task": lambda w, v: w.guard.start_session(v),
    "start_session.principal": lambda w, v: w.guard.start_session("task", principal=v),
    "start_session.session_id": lambda w, v: w.guard.start_session("task", session_id=v),
    "start_session.scope": lambda w, v: w.guard.start_session("task", scope=v),
    "start_session.metadata": lambda w, v: w.guard.start_session("task", metadata={"k": v}),
    "add_source.text": lambda w, v: w.session.add_source(v),
    "add_source.label": lambda w, v: w.session.add_source("text", label=v),
    "add_source.origin": lambda w, v: w.session.add_source("text", origin=v),
    "answer.call_id": lambda w, v: w.session.answer(v, True, by="ana"),
    "answer.approved": lambda w, v: w.session.answer(w.pending_call, v, by="ana"),
    "answer.by": lambda w, v: w.session.answer(w.pending_call, True, by=v),
    "answer.note": lambda w, v: w.session.answer(w.pending_call, False, by="ana", note=v),
    "control.action": lambda w, v: w.session.control(v),
    "control.by": lambda w, v: w.session.control("pause", by=v),
    "control.note": lambda w, v: w.session.control("pause", by="ana", note=v),
}

# What escapes today (found by this file; for the owner of session/ and store/ to fix).
KNOWN: dict[str, str] = {}


@pytest.mark.parametrize(
    "parameter",
    [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN[p])) if p in KNOWN else p for p in PARAMETERS],
)
def test_every_hostile_kind_for_every_parameter(parameter: str) -> None:
    call = PARAMETERS[parameter]
    failures: dict[str, list[str]] = {}
    for kind, make in MAKERS.items():
        world = live()
        value = make()
        found = problems(world, lambda w=world, v=value: call(w, v))
        if found:
            failures[kind] = found
    assert failures == {}, f"{parameter}: {failures}"


def test_the_recursion_limit_is_unchanged() -> None:
    # The deep-list cases above must not have been "fixed" by raising the interpreter's limit.
    assert sys.getrecursionlimit() <= 10_000
