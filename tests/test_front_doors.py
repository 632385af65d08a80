"""Private means private: a package's ``_modules`` are imported only from inside that package
(and its subpackages: ``tether._decision`` is the shared kernel of every ``tether`` package).

Every subpackage of ``tether`` exposes what others may use in its ``__init__`` (pinned
below, like the top-level ``__all__``); a module importing another package's private
module would bypass that front door, so this test fails on it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "tether"


def _package_of(module: str) -> str:
    """``tether.session._state`` -> ``tether.session``; ``tether._decision`` -> ``tether``."""
    parts = module.split(".")
    while parts and parts[-1].startswith("_"):
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("tether"):
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names if a.name.startswith("_") and a.name != "__version__")
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names if a.name.startswith("tether"))
    return out


def test_no_module_imports_another_packages_private_names() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        home = module if path.name == "__init__.py" else _package_of(module)
        for line, target in _imports(path):
            private = any(part.startswith("_") for part in target.split(".")[1:])
            owner = _package_of(target)
            # Private to a package means: usable inside that package and its subpackages only.
            if private and home != owner and not home.startswith(owner + "."):
                problems.append(f"{path.relative_to(SRC.parent)}:{line} imports {target}")
    assert not problems, "\n".join(problems)


PINNED = {
    "tether.events": [
        "ApprovalAnswered",
        "ApprovalRequested",
        "CallProposed",
        "DecisionMade",
        "Event",
        "EventKind",
        "LabelField",
        "MessageAdded",
        "MessageToolCall",
        "PlanDeclared",
        "ReasonField",
        "ResultRecorded",
        "SessionControl",
        "SessionEnded",
        "SessionStarted",
        "SnapshotTaken",
        "SourceAdded",
        "event_from_json",
        "event_to_json",
        "format_time",
        "BudgetReleased",
        "BudgetReserved",
        "CheckedIn",
        "EndorsementAdded",
        "EndorsementRevoked",
        "EndorsementScope",
    ],
    "tether.approvals": [
        "MAX_PENDING_APPROVALS",
        "AnswerSource",
        "ApprovalBook",
        "ApprovalRecord",
        "ApprovalRequest",
        "ApprovalStatus",
        "Approver",
        "AsyncApprover",
        "StaticApprover",
        "StoreApprover",
        "Endorsement",
        "EndorsementBook",
    ],
    "tether.flow": [
        "DELIMITERS",
        "EDGE_PUNCT",
        "FlowLimits",
        "FlowTracker",
        "Integrity",
        "Label",
        "Match",
        "Origin",
        "ProvenanceIndex",
        "TRUSTED",
        "Trace",
        "UNTRUSTED",
        "canonical_principal",
        "canonical_readers",
        "contains_word",
        "join_all",
        "label",
        "normalize",
        "number_forms",
        "occurs_in",
        "percent_decode",
        "walk_leaves",
    ],
    "tether.monitor": [
        "MAX_CALL_RECORDS",
        "PLAN_TOOL",
        "CallRecord",
        "CheckView",
        "Detector",
        "Finding",
        "Leaf",
        "PlanRecord",
        "SessionState",
        "check_shape",
        "decide",
        "decide_plan",
        "matches",
        "plans_from_json",
        "plans_to_json",
        "result_label",
        "tighten",
        "LEDGER_PREFIX",
        "LedgerState",
        "ledger_id",
        "spend_of",
    ],
    "tether.policy": [
        "CompiledArg",
        "CompiledFlow",
        "CompiledTool",
        "DefaultFlows",
        "Policy",
        "PolicySpec",
        "PolicyWarning",
        "python_starting_policy",
        "same_value",
        "tools_from_module",
        "tools_from_schema",
        "validate_arg",
        "arg_from_schema",
        "canonical_value",
    ],
    "tether.session": [
        "ArgumentLabel",
        "CaseResult",
        "HistoryStep",
        "PolicyCase",
        "PolicyTestError",
        "PolicyTestRun",
        "Trial",
        "TrialError",
        "load_cases",
        "policy_test_files",
        "run_case",
        "run_cases",
        "trial",
        "MAX_OUTPUT_CHARS",
        "SnapshotPolicy",
        "Admission",
        "AgentSession",
        "Baseline",
        "Gate",
        "Guard",
        "Outcome",
        "ReplayChange",
        "ReplayReport",
        "Session",
        "call_hash",
        "error_text",
        "guarded",
        "policy_document",
        "replay",
        "replay_session",
        "stored_policy",
    ],
    "tether.store": [
        "ArchiveReport",
        "ArchivedSession",
        "ChainHead",
        "Durability",
        "EventStore",
        "GENESIS",
        "PendingApproval",
        "PostgresStore",
        "SQLiteStore",
        "SessionSummary",
        "SnapshotRecord",
        "StoredEvent",
        "VerifyProblem",
        "VerifyReport",
        "archive_sessions",
        "chain_break",
        "chain_hash",
        "finished_before",
        "is_postgres_url",
        "open_store",
        "verify_archived",
    ],
    "tether.server": [
        "INTERNAL_PREFIX",
        "Action",
        "AnswerOutcome",
        "ArgView",
        "Budget",
        "CheckAnswer",
        "GuardService",
        "Oversight",
        "OversightError",
        "PendingCall",
        "ROLES",
        "ReasonView",
        "Role",
        "SessionRow",
        "SourceView",
        "StopOutcome",
        "TimelineEntry",
        "TokenBook",
        "TokenError",
        "TokenInfo",
        "tokens_path",
        "CheckinView",
        "DEFAULT_ENDORSEMENT_S",
        "EndorsementView",
        "HIDDEN",
        "Activity",
        "ChainStatus",
        "ReplayRow",
        "chain_status",
        "page_templates",
        "replay_changes",
        "session_activity",
    ],
    "tether.charts": ["ask_waits", "asr_utility", "budget_use", "data_uri", "decisions_over_time"],
    "tether.server.web": ["LOOPBACK_HOSTS", "create_app", "serve"],
    "tether.client": ["GuardServiceError", "GuardUnavailable", "RemoteGuard", "RemoteSession"],
    "tether.agent": [
        "DEFAULT_SYSTEM_PROMPT",
        "RESULT_UNKNOWN",
        "Agent",
        "CallReport",
        "ChatClient",
        "FunctionTool",
        "FunctionToolset",
        "ModelConfig",
        "ModelError",
        "ModelReply",
        "RawToolCall",
        "RunResult",
        "ScriptedCall",
        "ScriptedModelServer",
        "TerminalApprover",
        "ToolSpec",
        "Toolset",
        "ToolsetGroup",
        "Turn",
        "as_toolset",
        "function_tool",
    ],
    "tether.bench": [
        "BenchContext",
        "OracleAgent",
        "ScriptedAgent",
        "Step",
        "StepOutcome",
        "TaskApprover",
        "Transcript",
        "WorstCaseAgent",
        "baseline",
        "episode_specs",
        "load_policies",
        "run",
        "summarize",
        "write_html",
        "write_json",
        "HumanLoad",
        "human_load",
    ],
    "tether.adapters.mcp": [
        "APPROVAL_SCHEMA",
        "CLIENTS",
        "DENIED",
        "ELICITATION",
        "INSTRUCTIONS",
        "MAX_TOOL_NAME",
        "PIN_SESSION_PREFIX",
        "SAMPLING",
        "Client",
        "ConfigChange",
        "LintFinding",
        "LintRule",
        "Listing",
        "Malformed",
        "McpToolError",
        "McpToolset",
        "Message",
        "Neighbours",
        "PinBook",
        "PinDetector",
        "PinFilter",
        "PinRecord",
        "PinStatus",
        "ProxyConfig",
        "ServeOptions",
        "TokenStore",
        "ToolDefinition",
        "Upstream",
        "UpstreamError",
        "apply_change",
        "check_gateway",
        "check_loopback",
        "classify",
        "definition_hash",
        "expand_variables",
        "find_client",
        "gateway_findings",
        "gateway_name",
        "gateway_tool_names",
        "lint_definition",
        "lint_server",
        "list_server",
        "load_gateway",
        "parse",
        "pin_keys",
        "plan_install",
        "plan_uninstall",
        "read_status",
        "recover_id",
        "result_text",
        "serve",
        "server_option",
        "starting_policy",
        "store_path",
        "token_file",
        "tool_error",
    ],
    "tether.adapters.agentdojo": [
        "SUITE_NAMES",
        "SUPPORTED_VERSIONS",
        "SuiteData",
        "TetherDefense",
        "UnchangedSharer",
        "exact_copy",
        "load_suites",
        "security_broken",
        "utility_ok",
    ],
    "tether.adapters.langgraph": ["INTERRUPT_KIND", "GuardedToolNode"],
    "tether.adapters.pydantic_ai": ["TetherToolset", "guarded"],
    "tether.adapters.openai_agents": ["AgentsGuard"],
    "tether.otel": ["Exporter", "SessionTracer", "tracer_provider"],
    "tether.cli": [
        "main",
    ],
    "tether.examples": [
        "ShippedPolicy",
        "example_policy_text",
        "shipped_policies",
        "shipped_policy",
    ],
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_subpackage_api_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PINNED[package])
    for name in module.__all__:
        assert hasattr(module, name), name
