"""Semantic matchers for argument values: paths, URLs, email addresses, globs.

Each matcher reads a value the way the component that consumes it would, and
where consumers disagree (percent-escapes in a path, a backslash in a URL, an
ambiguous host) it takes the reading that is safe for the check at hand:

* allow-list matchers (``path_under``, ``url_host_in``, ``email_domain_in``)
  match only when every plausible reading is allowed, and refuse values that
  clients parse differently;
* ``path_glob``, used by label, ask and deny conditions, matches when any
  plausible reading matches, so a disguised ``~/.ssh`` path is still labelled.

Hosts are compared in their IDNA 2008 / UTS #46 (non-transitional) form, as
browsers and httpx resolve them, so ``ß`` is not ``ss`` and Cyrillic look-alikes
are different hosts. Anything that does not parse cleanly does not match.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

import idna

from tether.flow._normalize import is_format_char, percent_decode

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Paths(NamedTuple):
    """How a policy reads paths: what ``~`` means and where relative paths start."""

    home: str = "/root"
    workdir: str = "/root"


DEFAULT_PATHS = Paths()


# ---------------------------------------------------------------- paths


def _decoded(text: str) -> str:
    """The reading of a path by a consumer that decodes everything it can."""
    text = unicodedata.normalize("NFKC", percent_decode(text))
    if not text.isascii():
        text = "".join(ch for ch in text if not is_format_char(ch))
    return text.replace("\\", "/")


def _absolute(text: str, workdir: str, home: str) -> str:
    if text == "~" or text.startswith("~/"):
        text = home.rstrip("/") + text[1:]
    if not text.startswith("/"):
        text = workdir.rstrip("/") + "/" + text
    return posixpath.normpath(re.sub(r"/+", "/", text))


@lru_cache(maxsize=8192)
def path_readings(value: str, workdir: str = "/root", home: str = "/root") -> tuple[str, ...]:
    """Every plausible absolute, lexically normalised reading of a path (empty if unusable).

    The literal reading keeps escapes and backslashes as name characters; the
    decoded reading applies percent-decoding, NFKC and ``\\`` -> ``/``. ``~``
    expands to ``home`` and relative paths are taken relative to ``workdir``.
    Symlinks are not resolved: the check is lexical and deterministic.
    """
    if not value or _CONTROL.search(value):
        return ()
    decoded = _decoded(value)
    if not decoded or _CONTROL.search(decoded):
        return ()
    return tuple(dict.fromkeys((_absolute(value, workdir, home), _absolute(decoded, workdir, home))))


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def path_under(value: str, roots: Sequence[str], paths: Paths = DEFAULT_PATHS) -> bool:
    """True when every reading of ``value`` is a root or below one of ``roots``."""
    home = paths.home
    readings = path_readings(value, paths.workdir, home)
    if not readings:
        return False
    norm_roots = [r for root in roots for r in path_readings(root, "/", home)[:1]]
    return all(any(_under(path, root) for root in norm_roots) for path in readings)


@lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
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
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def path_glob(value: str, patterns: Sequence[str], paths: Paths = DEFAULT_PATHS) -> bool:
    """True when some reading of the path matches one of the globs (conservative for labels)."""
    home = paths.home
    readings = path_readings(value, paths.workdir, home)
    for pattern in patterns:
        for norm in path_readings(pattern, "/", home)[:1]:
            regex = glob_regex(norm)
            if any(regex.match(path) for path in readings):
                return True
    return False


def name_glob(value: str, patterns: Sequence[str]) -> bool:
    """Match a plain name (such as a tool name) against ``*``/``?`` globs."""
    return any(glob_regex(p).match(value) for p in patterns)


# ---------------------------------------------------------------- hosts


@lru_cache(maxsize=8192)
def normalize_host(host: str) -> str | None:
    """The host's IDNA 2008 (UTS #46, non-transitional) ASCII form, or None if it is not valid."""
    host = host.strip()
    if host.endswith("."):
        host = host[:-1]
    if not host or "%" in host or "\\" in host:
        return None
    if host.startswith("[") and host.endswith("]"):
        return host.lower() if re.fullmatch(r"\[[0-9a-fA-F:.]+\]", host) else None
    try:
        encoded = idna.encode(host, uts46=True, transitional=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    if not re.fullmatch(r"[a-z0-9.-]+", encoded):
        return None
    return encoded


def host_matches(host: str, allowed: Sequence[str]) -> bool:
    """``host`` equals an entry, or is a subdomain of a ``*.domain`` entry."""
    for entry in allowed:
        wildcard = entry.startswith("*.")
        want = normalize_host(entry[2:] if wildcard else entry)
        if want is None:
            continue
        if host.endswith("." + want) if wildcard else host == want:
            return True
    return False


@lru_cache(maxsize=8192)
def url_host(value: str) -> str | None:
    """The host of an http(s) URL, or None when it has none, is malformed or is ambiguous.

    The URL is parsed as written. Values that clients parse differently are
    refused: backslashes, whitespace or control characters anywhere, userinfo,
    percent-escapes in the host.
    """
    text = value.strip()
    if not text or _CONTROL.search(text) or "\\" in text or any(ch.isspace() for ch in text):
        return None
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not hostname or "@" in parts.netloc:
        return None
    return normalize_host(hostname)


def url_host_in(value: str, allowed: Sequence[str]) -> bool:
    """True when ``value`` is an http(s) URL whose host is allowed."""
    host = url_host(value)
    return host is not None and host_matches(host, allowed)


# ---------------------------------------------------------------- email

_ADDRESS = re.compile(r"[^@\s<>()\",;:\\\[\]%]+@([^@\s<>()\",;:\\\[\]%]+)")


@lru_cache(maxsize=8192)
def email_domain(value: str) -> str | None:
    """The normalised domain of one bare email address, or None if it is not one."""
    text = value.strip()
    if _CONTROL.search(text):
        return None
    match = _ADDRESS.fullmatch(text)
    if match is None:
        return None
    return normalize_host(match.group(1))


def email_domain_in(value: str, allowed: Sequence[str]) -> bool:
    """True when ``value`` is a bare address at an allowed domain."""
    domain = email_domain(value)
    return domain is not None and host_matches(domain, allowed)
