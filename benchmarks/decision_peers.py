"""Tether's peers for the stateless decision: Cedar (``cedarpy``) and Microsoft's Agent Governance Toolkit.

Each peer evaluates the stateless part of ``policies/agent20.yaml`` (tool allow-list and
argument constraints; no flows, asks or budgets) from a policy file of its own in
``policies/``, written as close to Tether's rules as its language allows. ``SAMPLES`` are
calls with the verdict Tether gives them and the peers that cannot express the rule a call
tests (they allow it); ``check_samples`` asserts both before anything is timed, so every
timing measures real decisions, and the list of rules a peer cannot express comes from
these asserted calls rather than from prose.

An ``Engine`` is one way to reach a verdict: ``prepare`` turns a ``ToolCall`` into the
engine's own input (done before timing, for every engine alike), ``run`` decides on it and
``allowed`` reads the verdict from what ``run`` returned. A peer whose package is not
installed is returned with ``skipped`` set and no engines.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tether import Policy, ToolCall
from tether.monitor import decide
from tether.policy import PolicySpec

POLICIES = Path(__file__).parent / "policies"

CEDAR = "cedar"
AGT_GOVERN = "agt_govern_engine"
AGT_EVALUATOR = "agt_policy_evaluator"
AGT_SHARED = "agt_shared_evaluator"
AGT_LITE = "agt_lite_allowlist"
ALL_PEERS = frozenset({CEDAR, AGT_GOVERN, AGT_EVALUATOR, AGT_SHARED, AGT_LITE})


@dataclass(frozen=True)
class Engine:
    """One way to decide a call: ``allowed(run(prepare(call)))``."""

    key: str
    """Name in the benchmark's JSON."""
    policy: str
    """Which policy file (and so which gaps in ``SAMPLES``) the engine uses: a ``*_PEERS`` name, or ``tether``."""
    api: str
    """The call that is timed, in words."""
    prepare: Callable[[ToolCall], Any]
    run: Callable[[Any], Any]
    allowed: Callable[[Any], bool]
    same_rules: bool = True
    """False for an engine that sees only part of the rules (it is reported, never used for a ratio)."""


@dataclass
class Peer:
    """A policy engine Tether is compared with; ``engines`` is empty when it is not installed."""

    name: str
    package: str
    version: str | None = None
    engines: list[Engine] = field(default_factory=list)
    skipped: str | None = None


@dataclass(frozen=True)
class Sample:
    """A call, Tether's verdict on it, and the peers that cannot express the rule it tests."""

    rule: str
    call: ToolCall
    tether_allows: bool
    gaps: frozenset[str] = frozenset()


IBAN = "GB29NWBK60161331926819"
SAMPLES = [
    Sample("a known tool with valid arguments", ToolCall("read_inbox", {"limit": 10, "folder": "inbox"}), True),
    Sample("a payment within the limits", ToolCall("send_money", {"recipient": IBAN, "amount": 80}), True),
    Sample("tool allow-list", ToolCall("delete_database", {}), False),
    Sample("integer range", ToolCall("read_inbox", {"limit": 500}), False, frozenset({AGT_LITE})),
    Sample("enumerated values", ToolCall("read_inbox", {"folder": "spam"}), False, frozenset({AGT_LITE})),
    Sample("number range", ToolCall("send_money", {"recipient": IBAN, "amount": 20000}), False, frozenset({AGT_LITE})),
    Sample("a required argument", ToolCall("search_email", {}), False, frozenset({AGT_LITE})),
    Sample("a second required argument", ToolCall("send_money", {"recipient": IBAN}), False, frozenset({AGT_EVALUATOR, AGT_LITE})),
    Sample("minimum number of list items", ToolCall("send_email", {"to": []}), False, frozenset({CEDAR, AGT_LITE})),
    Sample("a string prefix (https://)", ToolCall("web_fetch", {"url": "http://evil.example/x"}), False, frozenset({AGT_GOVERN, AGT_LITE})),
    Sample(
        "regular-expression pattern",
        ToolCall("list_events", {"day": "next-friday-please"}),
        False,
        frozenset({CEDAR, AGT_GOVERN, AGT_LITE}),
    ),
    Sample("maximum string length", ToolCall("web_search", {"query": "x" * 400}), False, frozenset({CEDAR, AGT_GOVERN, AGT_LITE})),
    Sample("path under a root", ToolCall("write_file", {"path": "/etc/passwd", "content": "x"}), False, frozenset({AGT_GOVERN, AGT_LITE})),
    Sample(
        "e-mail domain of a string argument",
        ToolCall("share_file", {"path": "~/work/q3-report.txt", "with": "mallory@evil.example"}),
        False,
        frozenset({AGT_GOVERN, AGT_LITE}),
    ),
    Sample("path normalisation (.. segments)", ToolCall("read_file", {"path": "~/work/../../../etc/passwd"}), False, ALL_PEERS),
    Sample(
        "a constraint on every item of a list (e-mail domains of attendees)",
        ToolCall("create_event", {"title": "Q3 review", "day": "2026-12-03", "attendees": ["mallory@evil.example"]}),
        False,
        ALL_PEERS,
    ),
    Sample(
        "maximum number of list items",
        ToolCall("send_email", {"to": [f"user{i}@company.com" for i in range(21)]}),
        False,
        ALL_PEERS,
    ),
    Sample("argument types", ToolCall("send_email", {"to": ["alice@company.com"], "subject": 42}), False, ALL_PEERS),
    Sample("unexpected arguments", ToolCall("read_inbox", {"limit": 10, "verbose": True}), False, ALL_PEERS),
]


def cannot_express(policy: str) -> list[str]:
    """The rules of Tether's stateless policy that ``policy`` cannot express, as shown by ``SAMPLES``."""
    return [s.rule for s in SAMPLES if policy in s.gaps]


def check_samples(engine: Engine) -> None:
    """Assert that ``engine`` gives every sample the verdict its policy can express."""
    wrong = []
    for s in SAMPLES:
        expected = s.tether_allows if engine.policy == "tether" else s.tether_allows or engine.policy in s.gaps
        got = engine.allowed(engine.run(engine.prepare(s.call)))
        if got != expected:
            wrong.append(f"{s.call.tool}{s.call.args!r:.80} ({s.rule}): expected {'allow' if expected else 'deny'}")
    assert not wrong, f"{engine.key} decides unlike its policy: " + "; ".join(wrong)


def stateless_policy(policy: Policy) -> Policy:
    """``policy`` without flows, labels, asks, spend, rates or budgets: the rules the peers express."""
    data = policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("ask", None)
    data.pop("rates", None)
    data["budgets"] = {}
    for tool in data["tools"].values():
        tool.pop("ask", None)
        tool.pop("labels", None)
        tool.pop("spend", None)
        for arg in tool.get("args", {}).values():
            arg.pop("flow", None)
    return Policy(PolicySpec.model_validate(data), source="agent20-stateless")


def tether_engine(policy: Policy, state: Any) -> Engine:
    """Tether's decision procedure on a session state (``decide``, as ``session.check`` calls it)."""
    now = time.time()
    return Engine(
        key="tether",
        policy="tether",
        api="tether.session.decide",
        prepare=lambda call: call,
        run=lambda call: decide(policy, state, call, "sha256:x", now),
        allowed=lambda decision: bool(decision.verdict == "allow"),
    )


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cedar_peer() -> Peer:
    """cedarpy with a pre-parsed ``PolicySet`` and ``Entities`` (public API) and its raw batch call."""
    peer = Peer("cedar", "cedarpy", _version("cedarpy"))
    try:
        import cedarpy
        from cedarpy import _internal
    except ImportError as exc:
        peer.skipped = f"cedarpy is not installed ({exc})"
        return peer
    policies = cedarpy.PolicySet.from_str((POLICIES / "agent20_stateless.cedar").read_text())
    entities = cedarpy.Entities.from_json_str("[]")

    def request(call: ToolCall) -> dict[str, Any]:
        return {"principal": 'User::"agent"', "action": f'Action::"{call.tool}"', "resource": 'Tool::"t"', "context": call.args}

    peer.engines = [
        Engine(
            key="cedar_public",
            policy=CEDAR,
            api="cedarpy.is_authorized (pre-parsed PolicySet and Entities)",
            prepare=request,
            run=lambda r: cedarpy.is_authorized(r, policies, entities),
            allowed=lambda result: bool(result.allowed),
        ),
        Engine(
            key="cedar_internal",
            policy=CEDAR,
            api="cedarpy._internal.is_authorized_batch (one request, context pre-serialised)",
            prepare=lambda call: {**request(call), "context": json.dumps(call.args)},
            run=lambda r: _internal.is_authorized_batch([r], policies, entities._inner, None, False),
            allowed=lambda result: bool(json.loads(result[0])["decision"] == "Allow"),
        ),
    ]
    return peer


AGT_PACKAGE = "agent-governance-toolkit-core"
AGT_GOVERN_POLICY = POLICIES / "agent20_stateless_agt_govern.yaml"


def _import_agt() -> Any:
    """Import AGT's modules; its 5.0 packages warn on import that they are deprecated in favour of themselves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import agent_os.lite
        import agent_os.policies
        import agentmesh.governance

    return agent_os, agentmesh


def _ran(**_kwargs: Any) -> str:
    """The governed 'tool': it does nothing, as Tether's check does not run the tool either."""
    return "ran"


def agt_peer() -> Peer:
    """AGT's in-process evaluators on the same stateless rules.

    * ``agt_govern_engine``: ``agentmesh.governance.PolicyEngine.evaluate``, the engine that
      ``govern()`` builds (deny-overrides, agent ``"*"``), on the context ``govern()`` builds.
    * ``agt_policy_evaluator``: ``agent_os.policies.PolicyEvaluator.evaluate`` (one condition per rule).
    * ``agt_shared_evaluator``: ``agent_os.policies.SharedPolicyEvaluator.evaluate`` (conjunctions).
    * ``agt_lite_allowlist``: ``agent_os.lite`` (tool names only; not the same rules).
    """
    peer = Peer("agt", AGT_PACKAGE, _version(AGT_PACKAGE))
    try:
        agent_os, agentmesh = _import_agt()
    except ImportError as exc:
        peer.skipped = f"{AGT_PACKAGE} is not installed ({exc})"
        return peer
    policies = agent_os.policies

    governed = agentmesh.governance.govern(_ran, policy=str(AGT_GOVERN_POLICY), on_deny=lambda decision: decision)
    engine = governed.engine
    agent_id = "*"  # govern()'s default agent

    evaluator = policies.PolicyEvaluator(policies=[policies.PolicyDocument.from_yaml(POLICIES / "agent20_stateless_agt_evaluator.yaml")])
    shared_rules = policies.SharedPolicySchema.from_yaml(POLICIES / "agent20_stateless_agt_shared.yaml").parsed_rules()
    shared = policies.SharedPolicyEvaluator()
    tools = sorted(Policy.from_file(POLICIES / "agent20.yaml").spec.tools)
    lite = agent_os.lite.govern(allow=tools, log=False)  # its in-memory trail off: the decision only

    def govern_context(call: ToolCall) -> dict[str, Any]:
        # govern()'s own translation of fn(action=TOOL, **args) into the evaluation context.
        context: dict[str, Any] = governed._build_context((), {"action": call.tool, **call.args})
        return context

    decided = lambda decision: bool(decision.allowed)  # noqa: E731
    peer.engines = [
        Engine(
            key=AGT_GOVERN,
            policy=AGT_GOVERN,
            api="agentmesh.governance.PolicyEngine.evaluate (the engine govern() uses, deny-overrides)",
            prepare=govern_context,
            run=lambda context: engine.evaluate(agent_id, context),
            allowed=decided,
        ),
        Engine(
            key=AGT_EVALUATOR,
            policy=AGT_EVALUATOR,
            api="agent_os.policies.PolicyEvaluator.evaluate",
            prepare=lambda call: {"tool_name": call.tool, **{f"{call.tool}.{k}": v for k, v in call.args.items()}},
            run=evaluator.evaluate,
            allowed=decided,
        ),
        Engine(
            key=AGT_SHARED,
            policy=AGT_SHARED,
            api="agent_os.policies.SharedPolicyEvaluator.evaluate",
            prepare=lambda call: {"tool_name": call.tool, **call.args},
            run=lambda context: shared.evaluate(context, shared_rules),
            allowed=decided,
        ),
        Engine(
            key=AGT_LITE,
            policy=AGT_LITE,
            api="agent_os.lite.govern(allow=[the 20 tools]).evaluate (tool names only)",
            prepare=lambda call: call.tool,
            run=lite.evaluate,
            allowed=decided,
            same_rules=False,
        ),
    ]
    return peer


class AgtAuditedPath:
    """``govern()``'s wrapper with its audit log persisted to a file by AGT's ``FileAuditSink``.

    ``GovernanceConfig`` documents an ``audit_file`` option, but ``GovernedCallable`` (5.0.0)
    never reads it and keeps its ``AuditLog`` in memory; the file-backed path is that same
    ``AuditLog`` given a ``FileAuditSink`` (hash-chained, HMAC-signed JSON lines, one
    open-append-close per entry, no fsync), which this class attaches to the wrapper.
    """

    def __init__(self, path: Path) -> None:
        _, agentmesh = _import_agt()
        gov = agentmesh.governance
        self.sink = gov.FileAuditSink(path, secret_key=b"tether-benchmark-key")
        self.governed = gov.govern(_ran, policy=str(AGT_GOVERN_POLICY), on_deny=lambda decision: decision)
        self.governed._audit = gov.AuditLog(sink=self.sink)

    def prepare(self, call: ToolCall) -> dict[str, Any]:
        return {"action": call.tool, **call.args}

    def run(self, kwargs: dict[str, Any]) -> Any:
        return self.governed(**kwargs)

    @staticmethod
    def allowed(result: Any) -> bool:
        return bool(result == "ran")

    def audit_entries(self) -> int:
        """Entries in the audit file, after checking its hash chain and signatures."""
        ok, error = self.sink.verify_integrity()
        assert ok, f"AGT's audit file does not verify: {error}"
        return len(self.sink.read_entries())
