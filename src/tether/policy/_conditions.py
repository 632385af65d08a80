"""Compile policy conditions into fast predicates over a call under check."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tether.flow import Label, contains_word, normalize, number_forms, occurs_in
from tether.policy import _matchers as m
from tether.policy._problems import Problems, did_you_mean
from tether.policy._schema import Condition, Effect, compile_pattern


class LeafProvenance(Protocol):
    """Where one leaf value of an argument came from."""

    path: str
    value: Any
    label: Label
    found: bool
    trusted_source: bool
    sources: tuple[str, ...]


class CallView(Protocol):
    """What a condition may look at: the call, its provenance, the session."""

    tool: str
    effect: Effect
    args: dict[str, Any]
    context: Label

    @property
    def task(self) -> str:
        """The session's task text, normalised."""
        ...

    def leaves(self, arg: str) -> Sequence[LeafProvenance]:
        """Leaf values of an argument with their provenance (empty if absent)."""
        ...

    def any_arg_untrusted(self) -> bool:
        """Some string or number leaf of the call is untrusted."""
        ...

    def calls_of(self, tool: str) -> int:
        """How many calls to ``tool`` the session has made (allowed or approved)."""
        ...


Predicate = Callable[[CallView], bool]


def same_value(a: Any, b: Any) -> bool:
    """Whether two scalar argument values are the same for ``equals``/``in``: booleans only equal
    booleans, numbers compare as numbers, strings after normalisation."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isfinite(a) and float(a) == float(b)
    if isinstance(a, str) and isinstance(b, str):
        return normalize(a) == normalize(b)
    return False


def canonical_value(value: Any) -> str | None:
    """The canonical form of a scalar argument value, such that two values have the same form
    exactly when :func:`same_value` holds for them: ``s:`` and the normalised text for a string,
    ``n:`` and the number as a float for a finite number, ``b:true``/``b:false`` for a boolean.

    None (matches nothing, not even itself) for anything else: containers, null, non-finite
    numbers, an empty string, and a string carrying control or invisible characters (category
    ``Cc``, ``Cf``, or a lone surrogate). Normalisation removes invisible characters, so such a
    string would otherwise match a plain one that a tool treats as different (an endorsed value
    is what a human approved; a look-alike with hidden characters must be asked about again).
    """
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
        return f"n:{number!r}" if math.isfinite(number) else None
    if isinstance(value, str):
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in value):
            return None
        text = normalize(value)
        return "s:" + text if text else None
    return None


@dataclass(frozen=True, slots=True)
class Scope:
    """What a condition may refer to, which way it acts, and where its problems are recorded."""

    problems: Problems
    """Collects errors and warnings."""
    paths: m.Paths = m.DEFAULT_PATHS
    """How paths are read."""
    args: frozenset[str] | None = None
    """The arguments the tool declares (None: a policy-wide rule, any name)."""
    check_value: Callable[[str, Any], str | None] | None = None
    """Why a value of the named argument could never pass its constraints (None if it could)."""
    effects: frozenset[Effect] | None = None
    """The effects calls under this condition can have (None: any)."""
    tools: frozenset[str] | None = None
    """Tools that can ever have run (None: any, e.g. when the policy's default is ``ask``)."""
    values_only: bool = False
    """Only tests on argument values are allowed (for ``write_when``: it must not depend on history)."""
    permits: bool = False
    """Which way a true result acts: False when a match makes the decision stricter (``when`` of
    ask and deny rules, raising labels, ``write_when``), True when it lets something through (a
    flow rule's ``unless``, lowering labels). Semantic matchers err towards the stricter decision:
    on the restricting side any plausible reading of one leaf may match; on the permitting side
    every leaf must be canonical and match. ``not`` flips the side."""


_HISTORY_KINDS = ("context", "context_has", "effect", "args_untrusted", "called")
_HISTORY_MATCHERS = ("untrusted", "grounded", "from_task", "has_tags")


def _same_or_null(a: Any, b: Any) -> bool:
    return (a is None and b is None) or same_value(a, b)


def compile_condition(cond: Condition, path: str, scope: Scope) -> Predicate:
    """Turn a validated condition into a predicate; check references to arguments and tools."""
    if scope.values_only:
        used = [k for k in (*_HISTORY_KINDS, *_HISTORY_MATCHERS) if getattr(cond, k) is not None]
        if used:
            scope.problems.error(f"{used[0]!r} cannot be used here: only tests on argument values are allowed", path)
            return lambda view: False
    if cond.always is not None:
        value = cond.always
        return lambda view: value
    if cond.context is not None:
        want_untrusted = cond.context == "untrusted"
        return lambda view: view.context.untrusted == want_untrusted
    if cond.context_has is not None:
        tags = frozenset(cond.context_has)
        return lambda view: tags <= view.context.tags
    if cond.effect is not None:
        effect = cond.effect
        if scope.effects is not None and effect not in scope.effects:
            scope.problems.warn(f"this condition can never hold: the tool's calls are never a {effect}", path)
        return lambda view: view.effect == effect
    if cond.args_untrusted is not None:
        flag = cond.args_untrusted
        return lambda view: view.any_arg_untrusted() == flag
    if cond.called is not None:
        tool, at_least = cond.called, cond.at_least
        if scope.tools is not None and tool not in scope.tools:
            hint = did_you_mean(tool, scope.tools)
            scope.problems.warn(f"this condition can never hold: {tool!r} is not a tool of this policy, so it never runs{hint}", path)
        return lambda view: view.calls_of(tool) >= at_least
    if cond.all is not None:
        parts = [compile_condition(c, f"{path}.all[{i}]", scope) for i, c in enumerate(cond.all)]
        return lambda view: all(p(view) for p in parts)
    if cond.any is not None:
        parts = [compile_condition(c, f"{path}.any[{i}]", scope) for i, c in enumerate(cond.any)]
        return lambda view: any(p(view) for p in parts)
    if cond.not_ is not None:
        inner = compile_condition(cond.not_, f"{path}.not", replace(scope, permits=not scope.permits))
        return lambda view: not inner(view)
    assert cond.arg is not None
    return _compile_arg_condition(cond, path, scope)


def _never_holds(cond: Condition, scope: Scope) -> str | None:
    """A cheap proof that an argument condition can never hold, or None."""
    assert cond.arg is not None
    lows = [b for b in (cond.gt, cond.ge) if b is not None]
    highs = [b for b in (cond.lt, cond.le) if b is not None]
    if lows and highs and max(lows) > min(highs):
        return f"no number is above {max(lows)!r} and below {min(highs)!r}"
    if (cond.gt is not None and cond.lt is not None and cond.gt >= cond.lt) or (
        cond.ge is not None and cond.lt is not None and cond.ge >= cond.lt
    ):
        return "the numeric bounds leave no room"
    value_tests = ("in_", "pattern", "path_glob", "gt", "ge", "lt", "le", *m.MATCHER_KEYS)
    if cond.exists is False and any(getattr(cond, k) is not None for k in value_tests):
        return "'exists: false' and a test on the value cannot both hold"
    check = scope.check_value
    if check is not None:
        if cond.equals is not None and (why := check(cond.arg, cond.equals)) is not None:
            return f"the argument can never equal {cond.equals!r} ({why})"
        if cond.in_ is not None:
            values = [v for v in cond.in_ if v is not None]
            if values and len(values) == len(cond.in_) and all(check(cond.arg, v) is not None for v in values):
                return f"the argument can never take any of {cond.in_!r}"
    return None


def _compile_arg_condition(cond: Condition, path: str, scope: Scope) -> Predicate:
    name = cond.arg
    assert name is not None
    if scope.args is not None and name not in scope.args:
        scope.problems.error(
            f"condition refers to argument {name!r}, which the tool does not declare{did_you_mean(name, scope.args)}", path
        )
    if cond.idn and not scope.permits:
        # The restricting side reads every form of a name (A-labels included) whatever idn says.
        scope.problems.error("'idn' has no effect here: a rule that makes the decision stricter already reads every form of a name", path)
    never = _never_holds(cond, scope)
    if never is not None:
        scope.problems.warn(f"this condition can never hold: {never}", path)
    paths, permits = scope.paths, scope.permits
    # Each test reads one leaf (a scalar at any depth of the argument, object keys included) and
    # says True, False, or None (does not apply: a null leaf sends nothing, so provenance tests
    # skip it). The list rule: the condition holds of the argument when it holds of ANY leaf on
    # the restricting side, of EVERY leaf on the permitting side (see docs/policy.md).
    tests: list[Callable[[LeafProvenance, str], bool | None]] = []

    # ``equals: null`` (or null in ``in``) holds for an absent or null argument: both send nothing.
    null_allowed = False
    if "equals" in cond.model_fields_set:
        want = cond.equals
        null_allowed = want is None
        tests.append(lambda leaf, task: _same_or_null(leaf.value, want))
    if cond.in_ is not None:
        options = list(cond.in_)
        null_allowed = null_allowed or None in options
        tests.append(lambda leaf, task: any(_same_or_null(leaf.value, o) for o in options))
    if cond.pattern is not None:
        tests.append(_pattern_test(compile_pattern(cond.pattern), permits))
    for key in m.MATCHER_KEYS:
        entries = getattr(cond, key)
        if entries is not None:
            try:
                matcher = m.build_matcher(key, entries, paths, idn=bool(cond.idn) and key in m.HOST_MATCHER_KEYS)
            except ValueError as exc:
                scope.problems.error(str(exc), f"{path}.{key}")
                continue
            tests.append(_matcher_test(matcher, permits))
    for op_name, op in (
        ("gt", lambda a, b: a > b),
        ("ge", lambda a, b: a >= b),
        ("lt", lambda a, b: a < b),
        ("le", lambda a, b: a <= b),
    ):
        bound = getattr(cond, op_name)
        if bound is not None:
            tests.append(_numeric_test(op, bound, permits))
    if cond.untrusted is not None:
        flag = cond.untrusted
        tests.append(lambda leaf, task: None if leaf.value is None else leaf.label.untrusted == flag)
    if cond.grounded is not None:
        flag = cond.grounded
        tests.append(lambda leaf, task: None if leaf.value is None else leaf.trusted_source == flag)
    if cond.has_tags is not None:
        tags = frozenset(cond.has_tags)
        tests.append(lambda leaf, task: None if leaf.value is None else tags <= leaf.label.tags)
    if cond.from_task is not None:
        flag = cond.from_task
        tests.append(lambda leaf, task: _in_task(leaf.value, task) == flag)

    exists = cond.exists

    def holds(leaf: LeafProvenance, task: str) -> bool | None:
        results = [t(leaf, task) for t in tests]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True

    def predicate(view: CallView) -> bool:
        present = name in view.args and view.args[name] is not None
        if exists is not None and present != exists:
            return False
        if not present and null_allowed:
            return True
        if not tests:
            return True
        if not present:
            return False
        results = [holds(leaf, view.task) for leaf in view.leaves(name)]
        if permits:
            # Lets something through: every leaf must pass (skipped ones aside), and one must be there.
            return any(r is True for r in results) and all(r is not False for r in results)
        return any(r is True for r in results)

    return predicate


def _in_task(value: Any, task: str) -> bool:
    """The value, normalised, appears in the task text (as a whole word when short or numeric)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    if isinstance(value, str):
        return occurs_in(task, normalize(value))  # whole tokens only: a prefix of the user's value is another value
    return any(contains_word(task, form, number=True) for form in number_forms(value))


def _matcher_test(matcher: m.ValueMatcher, permits: bool) -> Callable[[LeafProvenance, str], bool | None]:
    if permits:
        # Lets something through: the leaf must already be canonical and match.
        return lambda leaf, task: isinstance(leaf.value, str) and matcher.accepts(leaf.value)
    # Makes the decision stricter: a leaf that some consumer could read as a match is enough.
    return lambda leaf, task: isinstance(leaf.value, str) and matcher.may_match(leaf.value)


def _pattern_test(regex: re.Pattern[str], permits: bool) -> Callable[[LeafProvenance, str], bool | None]:
    def test(leaf: LeafProvenance, task: str) -> bool:
        v = leaf.value
        if not isinstance(v, str):
            return False
        raw, folded = regex.search(v) is not None, regex.search(unicodedata.normalize("NFKC", v)) is not None
        # Raw text and its NFKC form (full-width look-alikes): either reading makes a restricting
        # rule fire; a permitting one needs both.
        return (raw and folded) if permits else (raw or folded)

    return test


def _numeric_test(op: Callable[[float, float], bool], bound: float, permits: bool) -> Callable[[LeafProvenance, str], bool | None]:
    def test(leaf: LeafProvenance, task: str) -> bool:
        v = leaf.value
        if isinstance(v, str) and not permits:
            # A restricting rule reads a number written as text as the number a consumer would parse.
            v = _as_number(v)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return False
        return op(float(v), bound)

    return test


def _as_number(text: str) -> float | None:
    try:
        # Python's float() reads "1_000"; a JSON or C consumer does not: refuse underscores.
        return None if "_" in text else float(text.strip())
    except ValueError:
        return None
