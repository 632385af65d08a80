"""Semantic matchers for argument values: paths, URLs, email addresses, globs.

Every matcher normalises the value the way the component that will consume it
would (a filesystem collapses ``..``, a browser treats ``\\`` as ``/``, DNS is
case-insensitive and IDNA-encoded), then compares against the policy's
allow-list. Anything that does not parse cleanly does not match: the caller
turns that into a deny.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit

from tether.flow._normalize import is_format_char, percent_decode

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: str) -> str | None:
    """Percent-decode, NFKC, drop invisible characters; None if control chars remain."""
    text = percent_decode(text)
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(ch for ch in text if not is_format_char(ch))
    if _CONTROL.search(text):
        return None
    return text


# ---------------------------------------------------------------- paths


@lru_cache(maxsize=8192)
def normalize_path(value: str, base: str = "/", home: str = "/root") -> str | None:
    """Lexically normalised absolute path, or None when the value is not a usable path.

    ``~`` expands to ``home``; relative paths are taken relative to ``base``.
    Symlinks are not resolved (the check is lexical and deterministic).
    """
    text = _clean(value)
    if text is None or not text:
        return None
    text = text.replace("\\", "/")
    if text == "~" or text.startswith("~/"):
        text = home.rstrip("/") + text[1:]
    if not text.startswith("/"):
        text = base.rstrip("/") + "/" + text
    text = re.sub(r"/+", "/", text)
    return posixpath.normpath(text)


def path_under(value: str, roots: Sequence[str], home: str = "/root") -> bool:
    """True when ``value`` names ``root`` itself or something below one of ``roots``."""
    for root in roots:
        norm_root = normalize_path(root, home=home)
        if norm_root is None:
            continue
        path = normalize_path(value, base=norm_root, home=home)
        if path is None:
            return False
        if norm_root == "/" or path == norm_root or path.startswith(norm_root + "/"):
            return True
    return False


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


def path_glob(value: str, patterns: Sequence[str], home: str = "/root") -> bool:
    """True when the normalised path matches one of the globs."""
    path = normalize_path(value, home=home)
    if path is None:
        return False
    for pattern in patterns:
        norm = normalize_path(pattern, home=home)
        if norm is not None and glob_regex(norm).match(path):
            return True
    return False


def name_glob(value: str, patterns: Sequence[str]) -> bool:
    """Match a plain name (such as a tool name) against ``*``/``?`` globs."""
    return any(glob_regex(p).match(value) for p in patterns)


# ---------------------------------------------------------------- hosts


@lru_cache(maxsize=8192)
def normalize_host(host: str) -> str | None:
    """Lower-case IDNA (punycode) form of a host name, or None if it is not valid."""
    host = host.strip().rstrip(".")
    if not host:
        return None
    if host.startswith("[") and host.endswith("]"):
        return host.lower()
    try:
        encoded = host.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None
    if not re.fullmatch(r"[a-z0-9.-]+|[0-9a-f:.]+", encoded):
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
    """The normalised host of an http(s) URL, or None when it has none or is malformed."""
    text = _clean(value)
    if text is None:
        return None
    text = text.strip().replace("\\", "/")
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None  # userinfo is a classic disguise (https://trusted@evil)
    return normalize_host(hostname)


def url_host_in(value: str, allowed: Sequence[str]) -> bool:
    """True when ``value`` is an http(s) URL whose host is allowed."""
    host = url_host(value)
    return host is not None and host_matches(host, allowed)


# ---------------------------------------------------------------- email

_ADDRESS = re.compile(r"[^@\s<>()\",;:\\\[\]]+@([^@\s<>()\",;:\\\[\]]+)")


@lru_cache(maxsize=8192)
def email_domain(value: str) -> str | None:
    """The normalised domain of a bare email address, or None if it is not one."""
    text = _clean(value)
    if text is None:
        return None
    match = _ADDRESS.fullmatch(text.strip())
    if match is None:
        return None
    return normalize_host(match.group(1))


def email_domain_in(value: str, allowed: Sequence[str]) -> bool:
    """True when ``value`` is a bare address at an allowed domain."""
    domain = email_domain(value)
    return domain is not None and host_matches(domain, allowed)
