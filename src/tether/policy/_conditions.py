"""Compile policy conditions into fast predicates over a call under check."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tether.errors import PolicyError
from tether.flow import contains_word, normalize, number_forms, occurs_in
from tether.flow._labels import Label
from tether.policy import _matchers as m
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


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isfinite(a) and float(a) == float(b)
    if isinstance(a, str) and isinstance(b, str):
        return normalize(a) == normalize(b)
    return False


def compile_condition(
    cond: Condition, path: str, known_args: set[str] | None, source: str, paths: m.Paths = m.DEFAULT_PATHS, *, permits: bool = False
) -> Predicate:
    """Turn a validated condition into a predicate; check references to arguments.

    ``permits`` says which way a true result acts: False for ``when`` of ask, deny
    and label rules (a match makes the decision stricter), True for a flow rule's
    ``unless`` (a match lets a value through). Semantic matchers err towards the
    stricter decision: on the restricting side any plausible reading of one leaf
    may match; on the permitting side every leaf must be canonical and match.
    ``not`` flips the side.
    """
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
        return lambda view: view.effect == effect
    if cond.args_untrusted is not None:
        flag = cond.args_untrusted
        return lambda view: view.any_arg_untrusted() == flag
    if cond.called is not None:
        tool, at_least = cond.called, cond.at_least
        return lambda view: view.calls_of(tool) >= at_least
    if cond.all is not None:
        parts = [compile_condition(c, f"{path}.all[{i}]", known_args, source, paths, permits=permits) for i, c in enumerate(cond.all)]
        return lambda view: all(p(view) for p in parts)
    if cond.any is not None:
        parts = [compile_condition(c, f"{path}.any[{i}]", known_args, source, paths, permits=permits) for i, c in enumerate(cond.any)]
        return lambda view: any(p(view) for p in parts)
    if cond.not_ is not None:
        inner = compile_condition(cond.not_, f"{path}.not", known_args, source, paths, permits=not permits)
        return lambda view: not inner(view)
    assert cond.arg is not None
    return _compile_arg_condition(cond, path, known_args, source, paths, permits)


def _compile_arg_condition(
    cond: Condition, path: str, known_args: set[str] | None, source: str, paths: m.Paths, permits: bool
) -> Predicate:
    name = cond.arg
    assert name is not None
    if known_args is not None and name not in known_args:
        raise PolicyError(f"condition refers to argument {name!r}, which the tool does not declare", source=source, rule_path=path)
    tests: list[Callable[[Sequence[LeafProvenance]], bool]] = []

    def strings(leaves: Sequence[LeafProvenance]) -> list[str] | None:
        vals = [leaf.value for leaf in leaves]
        if not vals or not all(isinstance(v, str) for v in vals):
            return None
        return vals

    if cond.equals is not None:
        want = cond.equals
        tests.append(lambda leaves: bool(leaves) and all(_same(leaf.value, want) for leaf in leaves))
    if cond.in_ is not None:
        options = list(cond.in_)
        tests.append(lambda leaves: bool(leaves) and all(any(_same(leaf.value, o) for o in options) for leaf in leaves))
    if cond.pattern is not None:
        regex = compile_pattern(cond.pattern)
        # Raw text or its NFKC form (full-width look-alikes): the safe side for ask and deny rules.
        tests.append(
            lambda leaves: (
                (s := strings(leaves)) is not None and all(regex.search(v) or regex.search(unicodedata.normalize("NFKC", v)) for v in s)
            )
        )
    for key in m.MATCHER_KEYS:
        entries = getattr(cond, key)
        if entries is not None:
            try:
                matcher = m.build_matcher(key, entries, paths, idn=bool(cond.idn) and key in m.HOST_MATCHER_KEYS)
            except ValueError as exc:
                raise PolicyError(str(exc), source=source, rule_path=f"{path}.{key}") from exc
            tests.append(_matcher_test(matcher, permits))
    for op_name, op in (
        ("gt", lambda a, b: a > b),
        ("ge", lambda a, b: a >= b),
        ("lt", lambda a, b: a < b),
        ("le", lambda a, b: a <= b),
    ):
        bound = getattr(cond, op_name)
        if bound is not None:
            tests.append(_numeric_test(op, bound))
    if cond.untrusted is not None:
        flag = cond.untrusted
        tests.append(lambda leaves: any(leaf.label.untrusted for leaf in leaves) == flag)
    if cond.grounded is not None:
        flag = cond.grounded
        tests.append(lambda leaves: (bool(leaves) and all(leaf.trusted_source for leaf in leaves)) == flag)
    if cond.has_tags is not None:
        tags = frozenset(cond.has_tags)
        tests.append(lambda leaves: any(tags <= leaf.label.tags for leaf in leaves))

    exists = cond.exists

    from_task = cond.from_task

    def predicate(view: CallView) -> bool:
        present = name in view.args and view.args[name] is not None
        if exists is not None and present != exists:
            return False
        if not tests and from_task is None:
            return True
        if not present:
            return False
        leaves = view.leaves(name)
        if from_task is not None and (bool(leaves) and all(_in_task(leaf.value, view.task) for leaf in leaves)) != from_task:
            return False
        return all(t(leaves) for t in tests)

    return predicate


def _in_task(value: Any, task: str) -> bool:
    """The value, normalised, appears in the task text (as a whole word when short or numeric)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    if isinstance(value, str):
        return occurs_in(task, normalize(value))  # whole tokens only: a prefix of the user's value is another value
    return any(contains_word(task, form, number=True) for form in number_forms(value))


def _matcher_test(matcher: m.ValueMatcher, permits: bool) -> Callable[[Sequence[LeafProvenance]], bool]:
    if permits:
        # Lets something through: every leaf must already be canonical and match.
        return lambda leaves: bool(leaves) and all(isinstance(leaf.value, str) and matcher.accepts(leaf.value) for leaf in leaves)
    # Makes the decision stricter: one leaf that some consumer could read as a match is enough.
    return lambda leaves: any(isinstance(leaf.value, str) and matcher.may_match(leaf.value) for leaf in leaves)


def _numeric_test(op: Callable[[float, float], bool], bound: float) -> Callable[[Sequence[LeafProvenance]], bool]:
    def test(leaves: Sequence[LeafProvenance]) -> bool:
        if not leaves:
            return False
        for leaf in leaves:
            v = leaf.value
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                return False
            if not op(float(v), bound):
                return False
        return True

    return test
