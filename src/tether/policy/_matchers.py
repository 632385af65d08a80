"""Semantic matchers for argument values: paths, URLs, bare hosts, email addresses.

A matcher answers two different questions, one for each side a check can err on:

* :meth:`ValueMatcher.refusal` (the *permitting* side: argument constraints, flow
  rules' ``unless``, and anything under a ``not`` in an ask or deny rule). A value
  is accepted only when, exactly as the tool will receive it, it is already in
  the canonical form every plausible consumer agrees on, and that form matches.
  Anything that would need normalising (apart from the letter case of DNS names),
  holds characters outside the plain form, or that parsers read differently is
  refused, with a reason naming the form.
* :meth:`ValueMatcher.may_match` (the *restricting* side: ``when`` of ask and deny
  rules and of output labels). A value matches when *any* plausible reading of it
  matches: fullwidth letters folded, escapes decoded, ``~name`` read as the
  policy's home, paths compared without regard to case (a case-insensitive file
  system reads the same file), and so on.

Each side errs towards the stricter decision, so a disguised value can neither
pass an allow-list nor slip past a label, ask or deny rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from tether.policy._emails import LONGEST_READ, email_domain, email_domain_candidates
from tether.policy._hosts import Host, HostPattern, cache_short, host_readings
from tether.policy._paths import (
    DEFAULT_PATHS,
    Paths,
    absolute_pattern,
    clean_base,
    glob_regex,
    other_home,
    path_problem,
    path_readings,
    resolve,
    under,
)
from tether.policy._urls import MAX_URL, bare_host, url_host, url_host_candidates

__all__ = [
    "DEFAULT_PATHS",
    "MATCHER_KEYS",
    "HOST_MATCHER_KEYS",
    "EmailDomainIn",
    "HostIn",
    "PathGlob",
    "PathUnder",
    "Paths",
    "UrlHostIn",
    "ValueMatcher",
    "build_matcher",
    "email_domain_in",
    "glob_regex",
    "name_glob",
    "path_under",
    "url_host_in",
]

MATCHER_KEYS = ("path_under", "path_glob", "url_host_in", "host_in", "email_domain_in")
"""The policy keys that name a semantic matcher."""

HOST_MATCHER_KEYS = ("url_host_in", "host_in", "email_domain_in")
"""The matchers that read host names (and take the ``idn`` option)."""


class ValueMatcher(ABC):
    """One semantic matcher with its policy entries, ready to test string values."""

    key: ClassVar[str]
    """The policy key (``url_host_in``)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = list(entries)
        """The entries as the policy wrote them (for reasons)."""

    @abstractmethod
    def problem(self, value: str) -> str | None:
        """Why ``value`` is not accepted (a clause starting with "it" or "its"); None when it is."""

    @abstractmethod
    def may_match(self, value: str) -> bool:
        """Some plausible reading of ``value`` matches: the answer for checks where a match restricts."""

    def refusal(self, value: str) -> str | None:
        """Why ``value`` is refused, as the end of a sentence about it; None when it is accepted."""
        problem = self.problem(value)
        return None if problem is None else f"is refused by {self.key} {self.entries!r}: {problem}"

    def accepts(self, value: str) -> bool:
        """``value`` is canonical and matches: the answer for checks where a match permits."""
        return self.problem(value) is None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.entries!r})"


# ---------------------------------------------------------------- paths


def _root(entry: str, paths: Paths) -> str:
    problem = path_problem(entry)
    if problem is not None:
        raise ValueError(f"root {entry!r} is not a canonical path: {problem}")
    return resolve(entry, paths)


class PathUnder(ValueMatcher):
    """``path_under``: the path is one of the roots or inside one (exact case when permitting)."""

    key = "path_under"

    def __init__(self, entries: Sequence[str], paths: Paths = DEFAULT_PATHS) -> None:
        super().__init__(entries)
        self.paths = Paths(clean_base(paths.home), clean_base(paths.workdir), paths.lexical)
        self.roots = tuple(_root(entry, self.paths) for entry in entries)
        self._folded_roots = tuple(root.casefold() for root in self.roots)

    def problem(self, value: str) -> str | None:
        problem = path_problem(value, self.paths.lexical)
        if problem is not None:
            return problem
        path = resolve(value, self.paths)
        if any(under(path, root) for root in self.roots):
            return None
        name = other_home(value)
        if name is not None:
            return f"it names a path in the home directory of another user ({name}), which no root lists"
        return f"it names {path!r}, which is not under any root"

    def may_match(self, value: str) -> bool:
        readings = path_readings(value, self.paths)
        if readings.unknown:
            return True
        return any(under(path, root) for path in readings.paths for root in self._folded_roots)


class PathGlob(ValueMatcher):
    """``path_glob``: the path matches one of the globs (``**`` spans directories; ``*`` and ``?`` do not)."""

    key = "path_glob"

    def __init__(self, entries: Sequence[str], paths: Paths = DEFAULT_PATHS) -> None:
        super().__init__(entries)
        self.paths = Paths(clean_base(paths.home), clean_base(paths.workdir), paths.lexical)
        for entry in entries:
            if not entry or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in entry) or "\\" in entry:
                raise ValueError(f"glob {entry!r} is empty or holds control characters or backslashes")
        absolute = [absolute_pattern(entry, self.paths) for entry in entries]
        self._exact = tuple(glob_regex(p) for p in absolute)
        self._folded = tuple(glob_regex(p.casefold(), fold=True) for p in absolute)

    def problem(self, value: str) -> str | None:
        problem = path_problem(value, self.paths.lexical)
        if problem is not None:
            return problem
        path = resolve(value, self.paths)
        if any(regex.match(path) for regex in self._exact):
            return None
        return f"it names {path!r}, which matches no glob"

    def may_match(self, value: str) -> bool:
        readings = path_readings(value, self.paths)
        if readings.unknown:
            return True
        return any(regex.match(path) for path in readings.paths for regex in self._folded)


# ---------------------------------------------------------------- hosts


class _HostMatcher(ValueMatcher):
    noun: ClassVar[str]
    longest_read: ClassVar[int] = MAX_URL
    """Where a match restricts, longer values count as matching."""

    def __init__(self, entries: Sequence[str], *, idn: bool = False) -> None:
        super().__init__(entries)
        self.idn = idn
        """Whether internationalised names are accepted (as A-labels)."""
        self.patterns = tuple(HostPattern.parse(entry, idn=idn) for entry in entries)

    @abstractmethod
    def _host(self, value: str, idn: bool) -> Host | str: ...

    @staticmethod
    @abstractmethod
    def _candidates(value: str) -> list[str]:
        """Raw hosts a lenient consumer could find in ``value``."""

    def problem(self, value: str) -> str | None:
        host = self._host(value, self.idn)
        if isinstance(host, str):
            if self.idn or "xn--" not in value.lower():
                return host
            # A valid A-label in the labels a '**.' entry stands for (xn--bcher-kva.corp.com under
            # **.corp.com): the policy accepts every name at any depth under that domain, and an
            # A-label reads the same to every consumer. Listed names and '*.' labels still need idn.
            relaxed = self._host(value, True)
            if isinstance(relaxed, Host) and any(p.wildcard == "**" and p.matches(relaxed.name) for p in self.patterns):
                return None
            return host
        if any(pattern.matches(host.name) for pattern in self.patterns):
            return None
        return f"its {self.noun} {host.name!r} is not listed"

    def may_match(self, value: str) -> bool:
        if len(value) > self.longest_read:
            return True
        readings = _readings(value, type(self))
        return any(pattern.matches(host) for host in readings for pattern in self.patterns)


@cache_short
def _readings(value: str, kind: type[_HostMatcher]) -> frozenset[str]:
    return host_readings(kind._candidates(value))


class UrlHostIn(_HostMatcher):
    """``url_host_in``: an http(s) URL whose host is listed."""

    key = "url_host_in"
    noun = "host"

    def _host(self, value: str, idn: bool) -> Host | str:
        return url_host(value, idn=idn)

    @staticmethod
    def _candidates(value: str) -> list[str]:
        return url_host_candidates(value)


class HostIn(_HostMatcher):
    """``host_in``: a bare ``host[:port][/path]`` (or an http(s) URL) whose host is listed."""

    key = "host_in"
    noun = "host"

    def _host(self, value: str, idn: bool) -> Host | str:
        return bare_host(value, idn=idn)

    @staticmethod
    def _candidates(value: str) -> list[str]:
        return url_host_candidates(value)


class EmailDomainIn(_HostMatcher):
    """``email_domain_in``: one plain address whose domain is listed."""

    key = "email_domain_in"
    noun = "domain"
    longest_read = LONGEST_READ

    def _host(self, value: str, idn: bool) -> Host | str:
        return email_domain(value, idn=idn)

    @staticmethod
    def _candidates(value: str) -> list[str]:
        return email_domain_candidates(value)


def build_matcher(key: str, entries: Sequence[str], paths: Paths = DEFAULT_PATHS, *, idn: bool = False) -> ValueMatcher:
    """The matcher a policy key names; ``ValueError`` when an entry is not usable."""
    if idn and key not in HOST_MATCHER_KEYS:
        raise ValueError(f"'idn' applies to {', '.join(HOST_MATCHER_KEYS)}, not {key}")
    if key == "path_under":
        return PathUnder(entries, paths)
    if key == "path_glob":
        return PathGlob(entries, paths)
    if key == "url_host_in":
        return UrlHostIn(entries, idn=idn)
    if key == "host_in":
        return HostIn(entries, idn=idn)
    if key == "email_domain_in":
        return EmailDomainIn(entries, idn=idn)
    raise ValueError(f"unknown matcher {key!r}")


# ---------------------------------------------------------------- shorthands


def path_under(value: str, roots: Sequence[str], paths: Paths = DEFAULT_PATHS) -> bool:
    """``value`` is a canonical path at or below one of ``roots``."""
    return PathUnder(roots, paths).accepts(value)


def url_host_in(value: str, allowed: Sequence[str], *, idn: bool = False) -> bool:
    """``value`` is a canonical http(s) URL on an allowed host."""
    return UrlHostIn(allowed, idn=idn).accepts(value)


def email_domain_in(value: str, allowed: Sequence[str], *, idn: bool = False) -> bool:
    """``value`` is one canonical address in an allowed domain."""
    return EmailDomainIn(allowed, idn=idn).accepts(value)


def name_glob(value: str, patterns: Sequence[str]) -> bool:
    """Match a plain name (such as a tool name) against ``*``/``?`` globs."""
    return any(glob_regex(p).match(value) for p in patterns)
