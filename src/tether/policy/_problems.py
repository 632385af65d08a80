"""Problems found in a policy: errors refuse it, warnings are shown by ``tether policy check``.

Every problem carries the file, line and rule path that caused it. Loading and
compiling collect problems instead of stopping at the first, so a user sees all
of them at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tether.errors import PolicyError

Locate = Callable[[str], tuple[str, int | None]]
"""Maps a rule path (``tools.pay.args.to.flow``) to the file and line that wrote it."""


@dataclass(frozen=True, slots=True)
class PolicyWarning:
    """Something in a policy that is allowed but is probably a mistake."""

    message: str
    """What is wrong, in a sentence."""
    source: str
    """The file that caused it."""
    rule_path: str
    """Where in the policy (``tools.pay.ask[0].when``)."""
    line: int | None
    """1-based line in ``source``, when known."""

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        at = f" at {self.rule_path}" if self.rule_path else ""
        return f"{where}{at}: {self.message}"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'default'?"`` when ``word`` looks like a misspelling of one of ``options``
    (difflib's ratio of 0.6 or more), else ``""``."""
    close = difflib.get_close_matches(word, sorted(set(options)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close and close[0] != word else ""


def parent_path(path: str) -> str:
    """``a.b[0]`` -> ``a.b`` -> ``a`` -> ``""``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


class Problems:
    """Collects errors and warnings with their locations."""

    def __init__(self, locate: Locate) -> None:
        self._locate = locate
        self.errors: list[PolicyError] = []
        """Problems that refuse the policy."""
        self.warnings: list[PolicyWarning] = []
        """Problems that are reported but allowed."""

    def error(self, message: str, rule_path: str) -> None:
        """Record an error at ``rule_path``."""
        source, line = self._locate(rule_path)
        self.errors.append(PolicyError(message, source=source, rule_path=rule_path, line=line))

    def warn(self, message: str, rule_path: str) -> None:
        """Record a warning at ``rule_path``."""
        source, line = self._locate(rule_path)
        self.warnings.append(PolicyWarning(message, source, rule_path, line))

    def extend(self, later: Problems) -> None:
        """Record ``later``'s problems after these (for parts compiled before they are reported)."""
        self.errors += later.errors
        self.warnings += later.warnings

    def raise_if_any(self) -> None:
        """Raise one PolicyError carrying every error found so far."""
        if self.errors:
            error = PolicyError.collect(self.errors)
            # The warnings found alongside are part of the whole truth ``tether policy check`` tells.
            error.warnings = (*error.warnings, *self.warnings)
            raise error
