"""A loaded policy: where it came from, its hash, and lookups over its compiled form."""

from __future__ import annotations

from pathlib import Path

from tether.errors import PolicyError
from tether.policy import _matchers as m
from tether.policy._compile import compile_policy
from tether.policy._compose import resolve_policy
from tether.policy._loader import policy_hash, prune_invalid, read_document, read_policy_file
from tether.policy._model import CompiledTool
from tether.policy._problems import Locate, parent_path
from tether.policy._schema import PolicySpec

_CACHED_NAMES = 10_000
"""At most this many tool names get a cached stand-in or rate list (names come from the agent)."""


class Policy:
    """A validated, compiled policy. Identified by :attr:`hash` of its normalised content."""

    def __init__(
        self,
        spec: PolicySpec,
        *,
        source: str = "<string>",
        text: str | None = None,
        locate: Locate | None = None,
        sources: tuple[str, ...] = (),
    ) -> None:
        self.spec = spec
        """The validated document (with everything it ``extends`` merged in)."""
        self.source = source
        """Where it was loaded from."""
        self.text = text
        """The original YAML, when known (a policy that ``extends`` others: this file's text only)."""
        self.sources = sources or (source,)
        """Every file that contributed (bases first); one for a policy without ``extends``."""
        self.hash = policy_hash(spec)
        """``sha256:...`` of the normalised content (after ``extends`` is merged in)."""
        self.name = spec.name
        """The policy's name."""
        compiled = compile_policy(spec, locate or (lambda path: (source, None)))
        self.paths = compiled.paths
        """How paths are read: ``~`` is ``home``; relative paths start at ``workdir``."""
        self.tools = compiled.tools
        """The compiled tools the policy names (see :meth:`tool_for` for any name)."""
        self.deny_rules = compiled.deny_rules
        """The policy-wide deny rules."""
        self.ask_rules = compiled.ask_rules
        """The policy-wide ask rules."""
        self.rates = compiled.rates
        """The rate rules (see :meth:`rate_rules_for`)."""
        self.warnings = compiled.warnings
        """Things that are allowed but probably mistakes (conditions that can never hold, ...)."""
        self._stand_ins: dict[str, CompiledTool] = {}
        self._rate_cache: dict[str, list[tuple[str, int, float]]] = {}

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>", *, base_dir: str | Path | None = None) -> Policy:
        """Parse and compile a policy from YAML text. Relative ``extends`` entries are read
        from ``base_dir`` (default: the current directory)."""
        try:
            spec, resolved = resolve_policy(text, source, Path(base_dir) if base_dir is not None else None)
        except PolicyError as exc:
            raise _with_semantic_problems(exc, text, source) from None
        return cls(spec, source=source, text=text, locate=resolved.locate, sources=tuple(resolved.sources))

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a policy file (``extends`` entries are read relative to its folder)."""
        text = read_policy_file(path)
        return cls.from_yaml(text, source=str(path), base_dir=Path(path).parent)

    def tool_for(self, name: str) -> CompiledTool | None:
        """The compiled tool that decides and counts calls to ``name``.

        A tool the policy does not name is None under ``default: deny``. Under ``default: ask`` it
        is a stand-in that may do anything: its output is untrusted, it counts as a write, and the
        policy-wide deny and ask rules, budgets and rates apply to it as to any tool (a human's
        answer satisfies the ask; it never lifts a budget).
        """
        tool = self.tools.get(name)
        if tool is not None or self.spec.default != "ask":
            return tool
        found = self._stand_ins.get(name)
        if found is None:
            found = CompiledTool.stand_in(name, self.deny_rules, self.ask_rules)
            if len(self._stand_ins) < _CACHED_NAMES:
                self._stand_ins[name] = found
        return found

    def rate_rules_for(self, tool: str) -> list[tuple[str, int, float]]:
        """The rate rules that count calls to ``tool``: (rule path, limit, window in seconds)."""
        found = self._rate_cache.get(tool)
        if found is None:
            found = [(rate.rule, rate.limit, rate.window_s) for rate in self.rates if m.name_glob(tool, rate.tools)]
            if len(self._rate_cache) < _CACHED_NAMES:
                self._rate_cache[tool] = found
        return found

    def principal_rate_rules_for(self, tool: str) -> list[tuple[str, int, float]]:
        """The ``principal_budgets.rates`` that count calls to ``tool``: (rule path, limit, window in seconds)."""
        budgets = self.spec.principal_budgets
        if budgets is None:
            return []
        return [(f"principal_budgets.rates[{i}]", r.max, r.window_s) for i, r in enumerate(budgets.rates) if m.name_glob(tool, r.tools)]

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, hash={self.hash[:19]!r}, tools={len(self.tools)})"


def _with_semantic_problems(exc: PolicyError, text: str, source: str) -> PolicyError:
    """``exc`` plus the errors compiling would find in the rest of the file, so that a user
    sees every problem at once. (Only for a file without ``extends``, whose rules are all here.)"""
    try:
        doc = read_document(text, source)
    except PolicyError:
        return exc
    if "extends" in doc.data or any(p.source != source for p in exc.problems):
        return exc
    pruned = prune_invalid(doc.data, list(exc.problems))
    if pruned is None:
        return exc
    try:
        compiled = compile_policy(pruned, lambda path: (source, doc.line_of(path)))
    except PolicyError as more:
        seen = {(p.rule_path, p.message) for p in exc.problems}
        # A key that is missing next to an unknown key is most likely the same key misspelt.
        misspelt = {parent_path(p.rule_path) for p in exc.problems if p.message.startswith("unknown key")}
        extra = [
            p
            for p in more.problems
            if (p.rule_path, p.message) not in seen
            and not any(_under(p.rule_path, q.rule_path) for q in exc.problems)
            and not (p.message.startswith("missing required key") and parent_path(p.rule_path) in misspelt)
        ]
        out = PolicyError.collect(sorted([*exc.problems, *extra], key=lambda p: (p.line or 0, p.rule_path)))
        warnings = more.warnings
    else:
        out, warnings = exc, compiled.warnings
    # Warnings too: a file with errors still shows every warning in the same run.
    out.warnings = tuple(w for w in warnings if not any(_under(w.rule_path, q.rule_path) for q in exc.problems))
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith((root + ".", root + "["))
