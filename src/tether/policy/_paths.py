"""File paths: their canonical form, and every plausible reading of a messy one.

A path is *canonical* when every consumer (``open()``, a shell, ``realpath``, a
URL-aware tool, a case-insensitive or normalising file system) reads the same
file from it: no ``..`` segments (after a component that may be a symlink, the
kernel and a lexical normaliser reach different files), no leading ``//``, no
percent-escapes, backslashes, control or
invisible characters, no characters that NFKC folds (a fullwidth solidus), no
surrounding whitespace, no shell expansions (``$VAR``, ``${VAR}``, ``$(...)``,
backticks, ``{a,b}``, a ``.*`` glob that reaches ``..``), and no ``file:`` or other
URL form. ``.`` segments and empty segments (``./src/main.py``, ``a//b.txt``,
``/srv/w/./x.txt``, ``.``) are allowed and collapsed: every POSIX consumer reads them
the same way. ``~`` and ``~/...`` stand for the policy's ``home``; ``~name/...`` is
another user's home, kept as written; relative paths start at ``workdir``.

:func:`path_readings` lists every file a lenient consumer could reach from any
string, for checks where a match makes a decision stricter.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Callable
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import NamedTuple

from tether.flow import percent_decode
from tether.policy._hosts import cache_short, describe_char


class Paths(NamedTuple):
    """How a policy reads paths: what ``~`` means and where relative paths start."""

    home: str = "/root"
    workdir: str = "/root"
    lexical: bool = False
    """``..`` is resolved by text (``a/b/../c`` is ``a/c``), as the policy's ``lexical_paths``
    says: right when no directory the tools reach is a symlink; otherwise ``..`` is refused."""


DEFAULT_PATHS = Paths()

MAX_PATH = 4096
"""PATH_MAX on Linux: longer values are refused, and match wherever a match restricts."""

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# Separators in disguise that NFKC leaves alone but best-fit code pages or fonts turn into '/', '\' or '.'.
_LOOKALIKES = {
    **dict.fromkeys("\u2215\u2044\u29f8\u2571\u27cb", "/"),
    **dict.fromkeys("\u2216\u29f5\u29f9\u2572\u27cd", "\\"),
    "\u3002": ".",
}
_AS_ASCII = str.maketrans(_LOOKALIKES)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHELL = re.compile(r"\$[A-Za-z_{(0-9]|`")
_BRACES = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_FILE_URL = re.compile(r"(?i)file:(?://[^/]*)?(.*)", re.DOTALL)
_HOME_VAR = re.compile(r"\$\{HOME\}|\$HOME(?![A-Za-z0-9_])")
_PWD_VAR = re.compile(r"\$\{PWD\}|\$PWD(?![A-Za-z0-9_])")


@cache_short
def path_problem(value: str, lexical: bool = False) -> str | None:
    """Why ``value`` is not a canonical path, as a phrase; None when it is one (``lexical``:
    ``..`` segments are allowed, and :func:`resolve` resolves them by text)."""
    if not value:
        return "it is empty"
    if len(value) > MAX_PATH:
        return f"it is longer than {MAX_PATH} characters"
    for ch in value:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            return f"it contains the control character {describe_char(ch)}"
        if unicodedata.category(ch) == "Cf":
            return f"it contains the invisible character {describe_char(ch)}"
    if value != value.strip():
        return "it has leading or trailing whitespace"
    if unicodedata.normalize("NFKC", value) != value:
        folded = next((ch for ch in value if unicodedata.normalize("NFKC", ch) != ch), None)
        if folded is None:
            return "it is not in Unicode normal form (NFC)"
        return f"it contains {describe_char(folded)}, which some consumers fold to {unicodedata.normalize('NFKC', folded)!r}"
    if "\\" in value:
        return "it contains a backslash (some consumers read it as a separator)"
    lookalike = next((ch for ch in value if ch in _LOOKALIKES), None)
    if lookalike is not None:
        return f"it contains {describe_char(lookalike)}, which some consumers read as {_LOOKALIKES[lookalike]!r}"
    percent = _PERCENT.search(value)
    if percent is not None:
        return f"it contains the percent-escape {percent.group()!r}, which some consumers decode"
    if _SHELL.search(value):
        return "it contains a shell expansion ($VAR, ${VAR}, $(...) or a backtick)"
    if _BRACES.search(value):
        return "it contains a shell brace expansion ({a,b})"
    if value[:5].lower() == "file:":
        return "it is a file: URL, not a path"
    if _URL.match(value):
        return "it is a URL, not a path"
    if re.match(r"[A-Za-z]:", value):
        return "it starts with a drive letter"
    if value.startswith("//"):
        return "it starts with '//', whose meaning POSIX leaves to the system"
    for segment in value.split("/"):
        # '.' and empty segments mean the same to every POSIX consumer: resolve() collapses them.
        if segment == ".." and not lexical:
            return "it has a '..' segment (after a component that is a symlink, the system and a lexical reading reach different files)"
        if segment.startswith(".") and any(c in segment for c in "*?[") and fnmatchcase("..", segment):
            return f"it has the glob segment {segment!r}, which a shell can expand to '..'"
    return None


def clean_base(path: str) -> str:
    """A policy's ``home`` or ``workdir``, normalised lexically (it comes from the trusted policy)."""
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


def resolve(value: str, paths: Paths) -> str:
    """The absolute path a canonical ``value`` names, with ``.`` and empty segments collapsed
    (``~name/...`` stays as written, collapsed); ``..`` resolved by text when ``paths.lexical``."""
    resolved = _resolve(value, paths)
    return posixpath.normpath(resolved) if paths.lexical and ".." in resolved.split("/") else resolved


def _resolve(value: str, paths: Paths) -> str:
    segments = value.split("/")
    first = segments[0]
    rest = "/".join(s for s in segments[1:] if s not in ("", "."))
    if value.startswith("/"):
        return "/" + rest
    if first == "~":
        return _join(paths.home, rest)
    if first.startswith("~"):
        return _join(first, rest)
    return _join(paths.workdir, "/".join(s for s in segments if s not in ("", ".")))


def _join(base: str, rest: str) -> str:
    if not rest:
        return base
    return (base.rstrip("/") or "") + "/" + rest


def under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (both resolved; compared segment by segment)."""
    if root == "/":
        return path.startswith("/")
    return path == root or path.startswith(root + "/")


def other_home(value: str) -> str | None:
    """The ``~name`` a value starts with, when it names another user's home."""
    first = value.partition("/")[0]
    return first if first.startswith("~") and first != "~" else None


# ---------------------------------------------------------------- lenient readings


class Readings(NamedTuple):
    """Every absolute, lexically normalised, case-folded path a lenient consumer could reach."""

    paths: frozenset[str]
    """The readings."""
    unknown: bool
    """A shell variable other than ``$HOME``/``$PWD`` could expand to anything."""


def _variants(value: str) -> set[str]:
    """The value as consumers that decode, fold, strip or truncate it would see it (in either order)."""
    texts = {value}

    def step(applies: Callable[[str], bool], fn: Callable[[str], str]) -> None:
        texts.update({fn(t) for t in texts if applies(t)})

    step(lambda t: not t.isascii(), _folded)
    step(lambda t: "%" in t, percent_decode)
    step(lambda t: not t.isascii(), _folded)
    step(lambda t: "\x00" in t, lambda t: t.split("\x00")[0])  # C's open() stops at a NUL
    step(lambda t: t != t.strip(), str.strip)
    step(lambda t: "file:" in t.lower(), lambda t: m.group(1) if (m := _FILE_URL.match(t.strip())) else t)
    step(lambda t: _CONTROL.search(t) is not None, lambda t: _CONTROL.sub("", t))
    step(lambda t: "\\" in t, lambda t: t.replace("\\", "/"))
    return texts


def _folded(text: str) -> str:
    """NFKC, invisible characters dropped, separator look-alikes made ASCII."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf").translate(_AS_ASCII)


@cache_short
def path_readings(value: str, paths: Paths = DEFAULT_PATHS) -> Readings:
    """Every file ``value`` could name to a consumer that decodes, folds, expands or truncates it."""
    if len(value) > MAX_PATH:
        return Readings(frozenset(), True)
    home, workdir = clean_base(paths.home), clean_base(paths.workdir)
    out: set[str] = set()
    unknown = False
    for text in _variants(value):
        expanded = {text}
        if "$" in text or "`" in text:
            named = _PWD_VAR.sub(workdir, _HOME_VAR.sub(home, text))
            if _SHELL.search(named):
                unknown = True
            expanded.add(named)
        for form in expanded:
            for reading in _tilde_readings(form, home, workdir):
                for path in _aliases(_normalised(reading), workdir):
                    out.add(path.casefold())
    return Readings(frozenset(out), unknown)


_PROC = re.compile(r"/proc/(?:self|thread-self|[0-9]+)/(root|cwd)(?=/|$)")
_TRAILING = re.compile(r"[. ]+(?=/|$)")


def _aliases(path: str, workdir: str) -> set[str]:
    """Other names of the same file: ``/proc/self/root`` and ``/proc/self/cwd`` prefixes, and
    segments with trailing dots or spaces (which Windows and some SMB servers drop)."""
    out = {path}
    match = _PROC.match(path)
    if match is not None:
        base = "/" if match.group(1) == "root" else workdir
        out.add(_normalised(base + "/" + path[match.end() :]))
    for alias in list(out):
        stripped = "/".join(seg if seg in (".", "..") else _TRAILING.sub("", seg) or seg for seg in alias.split("/"))
        out.add(_normalised(stripped))
    return out


def _tilde_readings(text: str, home: str, workdir: str) -> list[str]:
    if text.startswith("/"):
        return [text]
    readings = [workdir + "/" + text]  # a consumer that does not expand '~'
    if text.startswith("~"):
        first, _, rest = text.partition("/")
        readings.append(home + "/" + rest)  # any ~name may be this user's own home
        name = first[1:]
        if name:
            readings.append(posixpath.dirname(home) + "/" + name + "/" + rest)
            readings.append(workdir + "/" + rest)  # ~+ is the working directory
    return readings


def _normalised(path: str) -> str:
    return posixpath.normpath(re.sub(r"/+", "/", path))


# ---------------------------------------------------------------- globs


@lru_cache(maxsize=1024)
def glob_regex(pattern: str, *, fold: bool = False) -> re.Pattern[str]:
    """Compile a path glob: ``**`` spans directories, ``*`` and ``?`` do not."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(ch))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if fold else 0)
    return re.compile("".join(out) + r"\Z", flags)


def absolute_pattern(pattern: str, paths: Paths) -> str:
    """A policy glob made absolute: ``~`` is ``home``; a relative glob (``**/*.pem``) starts at ``/``."""
    if pattern == "~" or pattern.startswith("~/"):
        return clean_base(paths.home).rstrip("/") + pattern[1:]
    if pattern.startswith("/") or pattern.startswith("~"):
        return pattern
    return "/" + pattern
