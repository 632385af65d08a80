"""The call under check as rules see it: each argument leaf with its provenance, the effect, the context."""

from __future__ import annotations

from typing import Any

from tether.approvals import EndorsementBook
from tether.flow import Label, Origin, Trace, label, walk_leaves
from tether.monitor._state import SessionState
from tether.policy import CompiledTool


class Leaf:
    """One scalar inside an argument, with where it came from (see :class:`tether.flow.Origin`)."""

    __slots__ = ("found", "inherited", "label", "path", "pinned", "sources", "trusted_source", "value")

    def __init__(self, path: str, value: Any, origin: Origin, endorsement: str | None = None) -> None:
        self.path = path
        self.value = value
        self.label: Label = origin.label
        self.found = origin.found
        self.inherited = origin.inherited
        """The label is the context label: the value was found nowhere (or is a boolean or null)."""
        self.trusted_source = origin.found and not origin.label.untrusted
        self.sources = origin.sources
        self.pinned = origin.pinned
        """A pinned source (the task, a policy constant) holds the value: the user named it."""
        if endorsement is not None:
            # A human endorsed this value for this argument: trusted, with its tags kept
            # (integrity only; an endorsement never declassifies).
            self.label = label("trusted", origin.label.tags)
            self.trusted_source = True
            self.sources = (*origin.sources, endorsement)


class CheckView:
    """The call under check, as conditions see it (implements ``CallView``)."""

    __slots__ = ("_books", "_cache", "_declared", "_now", "_planned", "_state", "args", "context", "effect", "endorsed", "tool")

    @property
    def task(self) -> str:
        """The session's task text, normalised."""
        return self._state.task_norm

    def __init__(
        self,
        state: SessionState,
        tool: CompiledTool,
        args: dict[str, Any],
        planned: frozenset[str] = frozenset(),
        *,
        endorsements: tuple[EndorsementBook, ...] = (),
        now: float = 0.0,
    ) -> None:
        self.tool = tool.name
        self._planned = planned
        """Arguments whose values an approved plan (or the task scope) named: taken as trusted."""
        self._books = tuple(book for book in endorsements if len(book))
        self._now = now
        self.endorsed: set[str] = set()
        """Endorsements that made an untrusted leaf trusted in this check."""
        self._declared = tool.args
        self.effect = tool.effect
        self.args = args
        self.context = state.context
        self._state = state
        self._cache: dict[str, list[Leaf]] = {}
        if tool.write_when is not None:
            self.effect = tool.effect_of(args, self)

    def leaves(self, arg: str) -> list[Leaf]:
        cached = self._cache.get(arg)
        if cached is not None:
            return cached
        value = self.args.get(arg)
        if value is None and arg not in self.args:
            out: list[Leaf] = []
        elif isinstance(value, dict | list | tuple):
            raw: list[tuple[str, Any]] = []
            walk_leaves(value, arg, raw)
            out = [self._leaf(path, v) for path, v in raw]
        else:
            out = [self._leaf(arg, value)]
        self._cache[arg] = out
        return out

    def leaf(self, path: str, value: Any) -> Leaf:
        """One leaf with its provenance (for leaves found by walking an argument's value)."""
        return self._leaf(path, value)

    def _leaf(self, path: str, value: Any) -> Leaf:
        origin = self._state.flow.origin(value)
        if self._planned and origin.label.untrusted and top_arg(path) in self._planned:
            # The plan's approval vouches for the value's integrity; its confidentiality tags stay, and
            # so does whether it was found nowhere (a tag it inherited still gets ``on_inherited``).
            origin = Origin(label("trusted", origin.label.tags), True, ("plan",), origin.inherited)
        if self._books and origin.label.untrusted and "{" not in path:
            arg = top_arg(path)
            for book in self._books:
                found = book.match(self.tool, arg, value, self._now)
                if found is not None:
                    self.endorsed.add(found.id)
                    return Leaf(path, value, origin, found.id)
        return Leaf(path, value, origin)

    def outflow_traces(self, max_chars: int | None = None) -> list[Trace]:
        """Short confidential pieces of this call that complete a run of a confidential source (or
        take their sink past a multiple of ``max_chars`` characters of such pieces)."""
        return self._state.flow.trace_outflow(self.tool, self.args, max_chars)

    def any_arg_untrusted(self) -> bool:
        if not self.context.untrusted:
            return False  # nothing untrusted has been read: no value can be untrusted
        for name in self.args:
            if name not in self._declared and self._leaf(f"{{{name}}}", name).label.untrusted:
                return True  # a name the tool does not declare is data the model chose (additional_args)
            for leaf in self.leaves(name):
                if leaf.label.untrusted and not (leaf.value is None or isinstance(leaf.value, bool)):
                    return True
        return False

    def calls_of(self, tool: str) -> int:
        return self._state.per_tool.get(tool, 0)


def top_arg(path: str) -> str:
    """The argument a leaf path starts with (``to[0]`` -> ``to``, ``meta.k`` -> ``meta``, ``{k}`` keys included)."""
    cut = len(path)
    for mark in (".", "[", "{"):
        at = path.find(mark)
        if at != -1 and at < cut:
            cut = at
    return path[:cut]
