"""Table-driven policy tests (``tether policy test``): YAML files of cases, each a short history
and a call with the verdict (and optionally the rule) the policy must give.

A test file::

    cases:
      - name: a payment to an IBAN read from an email asks
        task: pay the invoice in my inbox
        history:
          - {tool: list_inbox, output: "Invoice: pay 120 to DE89370400440532013000"}
          - {source: "my manager said yes", label: trusted}
        call: {tool: pay_invoice, args: {iban: DE89370400440532013000, amount: 120}}
        expect: deny
        rule: tools.pay_invoice.args.iban.flow

``rule`` matches a reason's rule exactly, or as a dotted prefix or suffix of it (``args.iban.flow``,
``tools.pay_invoice``); ``reason`` (optional) must occur in one of the reasons' messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from tether._decision import ToolCall
from tether.errors import ConfigError
from tether.policy import Policy
from tether.session._trial import HistoryStep, Trial, TrialError, trial

_VERDICTS = ("allow", "deny", "ask")
_CASE_KEYS = {"name", "task", "plan", "history", "call", "expect", "rule", "reason"}
_STEP_KEYS = {"tool", "args", "output", "error", "source", "label"}


class PolicyTestError(ConfigError):
    """A policy test file that cannot be read as cases (the message names the file and case)."""


@dataclass(frozen=True, slots=True)
class PolicyCase:
    """One row of a policy test table."""

    name: str
    """What the case checks, in words."""
    call: ToolCall
    """The call to decide."""
    expect: Literal["allow", "deny", "ask"]
    """The verdict the policy must give."""
    history: tuple[HistoryStep, ...] = ()
    """What the agent saw before the call."""
    task: str = "policy test"
    """The session's (trusted) task text."""
    plan: tuple[dict[str, Any], ...] | None = None
    """Writes declared as the session's plan before the history (``Session.declare_plan``); a plan
    that asks counts as approved by a human, like the history's asks."""
    rule: str | None = None
    """A rule that must be among the decision's reasons."""
    reason: str | None = None
    """Text that must occur in one of the reasons' messages."""
    where: str = ""
    """``FILE:case N`` for messages."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What a case got, and whether that is what it expected."""

    case: PolicyCase
    """The case run."""
    trial: Trial | None
    """The decision and labels (None when the history could not be replayed)."""
    problem: str | None
    """Why the case failed (None: it passed)."""

    @property
    def passed(self) -> bool:
        """The case got what it expected."""
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        """One JSON line of ``tether policy test --json``."""
        out: dict[str, Any] = {"case": self.case.name, "where": self.case.where, "passed": self.passed, "expect": self.case.expect}
        if self.trial is not None:
            out["verdict"] = self.trial.decision.verdict
            out["rules"] = [r.rule for r in self.trial.decision.reasons]
        if self.problem is not None:
            out["problem"] = self.problem
        return out


def policy_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """The YAML files named, and those under the directories named (sorted), once each."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            out.append(path)
        else:
            raise PolicyTestError(f"no test file or directory at {str(raw)!r}")
    return list(dict.fromkeys(out))


def load_cases(path: str | Path, text: str | None = None) -> list[PolicyCase]:
    """The cases of one test file (``text``: its content, when not read from ``path``)."""
    where = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8") if text is None else text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyTestError(f"{where}: cannot read the test file: {exc}") from None
    if isinstance(doc, Mapping):
        doc = doc.get("cases")
    if not isinstance(doc, list) or not doc:
        raise PolicyTestError(f"{where}: expected a non-empty list of cases (or a mapping with 'cases:')")
    return [_case(item, f"{where}:case {n}") for n, item in enumerate(doc, 1)]


def _case(item: Any, where: str) -> PolicyCase:
    if not isinstance(item, Mapping):
        raise PolicyTestError(f"{where}: a case is a mapping, got {type(item).__name__}")
    unknown = sorted(set(item) - _CASE_KEYS)
    if unknown:
        raise PolicyTestError(f"{where}: unknown key(s) {unknown} (a case has {sorted(_CASE_KEYS)})")
    expect = item.get("expect")
    if expect not in _VERDICTS:
        raise PolicyTestError(f"{where}: 'expect' must be one of {list(_VERDICTS)}, got {expect!r}")
    call = item.get("call")
    if not isinstance(call, Mapping) or not isinstance(call.get("tool"), str):
        raise PolicyTestError(f"{where}: 'call' must be a mapping with 'tool' (and 'args')")
    args = call.get("args", {})
    if not isinstance(args, Mapping):
        raise PolicyTestError(f"{where}: the call's 'args' must be a mapping")
    history = item.get("history", [])
    if not isinstance(history, list):
        raise PolicyTestError(f"{where}: 'history' must be a list of steps")
    plan = item.get("plan")
    if plan is not None and (not isinstance(plan, list) or not all(isinstance(w, Mapping) for w in plan)):
        raise PolicyTestError(f"{where}: 'plan' must be a list of writes ({{tool: NAME, args: {{ARG: VALUE}}}})")
    name = str(item.get("name") or f"{call['tool']} -> {expect}")
    return PolicyCase(
        name=name,
        call=ToolCall(call["tool"], dict(args)),
        expect=cast(Literal["allow", "deny", "ask"], expect),
        history=tuple(_step(s, f"{where} history step {n}") for n, s in enumerate(history, 1)),
        task=str(item.get("task", "policy test")),
        plan=None if plan is None else tuple(dict(w) for w in plan),
        rule=None if item.get("rule") is None else str(item["rule"]),
        reason=None if item.get("reason") is None else str(item["reason"]),
        where=where,
    )


def _step(item: Any, where: str) -> HistoryStep:
    if not isinstance(item, Mapping) or ("tool" in item) == ("source" in item):
        raise PolicyTestError(
            f"{where}: a step is {{tool: NAME, args: {{...}}, output: TEXT}} or {{source: TEXT, label: trusted|untrusted}}"
        )
    unknown = sorted(set(item) - _STEP_KEYS)
    if unknown:
        raise PolicyTestError(f"{where}: unknown key(s) {unknown}")
    if "source" in item:
        label = item.get("label", "trusted")
        if label not in ("trusted", "untrusted"):
            raise PolicyTestError(f"{where}: 'label' must be trusted or untrusted, got {label!r}")
        return HistoryStep(output=str(item["source"]), label=label)
    args = item.get("args", {})
    if not isinstance(args, Mapping):
        raise PolicyTestError(f"{where}: 'args' must be a mapping")
    output = item.get("output", "")
    return HistoryStep(
        tool=str(item["tool"]),
        args=dict(args),
        output=output if isinstance(output, str) else yaml.safe_dump(output),
        error=bool(item.get("error", False)),
    )


def run_case(policy: Policy, case: PolicyCase) -> CaseResult:
    """Decide the case's call after its history; say how the result differs from the expected one."""
    try:
        got = trial(policy, case.call, case.history, task=case.task, plan=case.plan)
    except TrialError as exc:
        return CaseResult(case, None, str(exc))
    decision = got.decision
    problems = []
    if decision.verdict != case.expect:
        why = "; ".join(f"{r.message} [rule {r.rule}]" for r in decision.reasons) or "no rule fired"
        problems.append(f"expected {case.expect}, got {decision.verdict} ({why})")
    if case.rule is not None and not any(_rule_matches(case.rule, r.rule) for r in decision.reasons):
        problems.append(f"expected rule {case.rule!r} among the reasons, got {[r.rule for r in decision.reasons]}")
    if case.reason is not None and not any(case.reason in r.message for r in decision.reasons):
        problems.append(f"expected a reason saying {case.reason!r}")
    return CaseResult(case, got, "; ".join(problems) or None)


def _rule_matches(expected: str, rule: str) -> bool:
    return rule == expected or rule.startswith(expected + ".") or rule.endswith("." + expected)


@dataclass(frozen=True, slots=True)
class PolicyTestRun:
    """Every case of a run, and how long it took."""

    results: tuple[CaseResult, ...]
    """One per case, in file order."""
    seconds: float
    """Wall time of the run."""

    @property
    def failed(self) -> list[CaseResult]:
        """The cases that did not get what they expected."""
        return [r for r in self.results if not r.passed]

    def summary(self) -> str:
        """``3 passed, 1 failed in 0.12s``."""
        failed = len(self.failed)
        parts = [f"{len(self.results) - failed} passed"] + ([f"{failed} failed"] if failed else [])
        return f"{', '.join(parts)} in {self.seconds:.2f}s"


def run_cases(policy: Policy, cases: Sequence[PolicyCase]) -> PolicyTestRun:
    """Run every case under ``policy``."""
    start = time.perf_counter()
    results = tuple(run_case(policy, c) for c in cases)
    return PolicyTestRun(results, time.perf_counter() - start)
