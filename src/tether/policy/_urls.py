"""The host of an http(s) URL or of a bare ``host[:port][/path]`` value.

:func:`url_host` and :func:`bare_host` accept only values that every parser reads
the same way (WHATWG URL parsers as in browsers and ``undici``, ``urllib.parse``,
``httpx``, ``urllib3``/``requests``), and say why when they refuse one.
:func:`url_host_candidates` lists the raw hosts a lenient parser could find in
any string, for checks where a match makes the decision stricter.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from tether.flow import percent_decode
from tether.policy._hosts import Host, cache_short, canonical_host, describe_char

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_PERCENT_OK = re.compile(r"%[0-9A-Fa-f]{2}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
MAX_URL = 8192
"""Longer values are refused (common servers refuse longer request lines) and, where a match
restricts, count as matching: nobody reads a sane host out of them."""


def _whole_value_problem(value: str) -> str | None:
    """Characters refused anywhere in a URL: parsers strip, keep or reject them differently."""
    for ch in value:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            return f"it contains the control character {describe_char(ch)}"
        if ch.isspace():
            return f"it contains whitespace ({describe_char(ch)})"
        if unicodedata.category(ch) == "Cf":
            return f"it contains the invisible character {describe_char(ch)}"
    if "\\" in value:
        return "it contains a backslash (WHATWG parsers read it as '/', others as data)"
    for match in re.finditer("%", value):
        if not _PERCENT_OK.match(value, match.start()):
            return "it contains a '%' that does not start a percent-escape"
    return None


def _authority_host(authority: str, *, idn: bool) -> Host | str:
    """Split ``host[:port]`` and check both; the authority has no userinfo by now."""
    if authority.startswith("["):
        end = authority.find("]")
        host_text, rest = (authority, "") if end < 0 else (authority[: end + 1], authority[end + 1 :])
    else:
        host_text, colon, after = authority.partition(":")
        rest = colon + after
    if rest:
        port = rest[1:] if rest.startswith(":") else ""
        if not _PORT.fullmatch(port) or int(port) > 65535:
            return f"its port {rest!r} is not a number from 1 to 65535 without leading zeros"
    return canonical_host(host_text, idn=idn)


def _split_authority(text: str) -> tuple[str, str]:
    """``(authority, rest)``: the authority ends at the first '/', '?' or '#'."""
    match = re.search(r"[/?#]", text)
    return (text, "") if match is None else (text[: match.start()], text[match.start() :])


@cache_short
def url_host(value: str, *, idn: bool = False) -> Host | str:
    """The host of ``value`` when it is a canonical http(s) URL; otherwise a phrase saying why not."""
    if not value:
        return "it is empty"
    if len(value) > MAX_URL:
        return f"it is longer than {MAX_URL} characters"
    problem = _whole_value_problem(value)
    if problem is not None:
        return problem
    scheme = _SCHEME.match(value)
    if scheme is None or scheme.group(1).lower() not in ("http", "https"):
        return "it is not an http(s) URL (it needs to start with http:// or https://)"
    rest = value[scheme.end() :]
    if not rest.startswith("//") or rest.startswith("///"):
        return "it does not have exactly two slashes after the scheme (parsers disagree on where such a host starts)"
    authority, _ = _split_authority(rest[2:])
    if "@" in authority:
        userinfo, _, authority = authority.partition("@")
        problem = _userinfo_problem(userinfo, authority)
        if problem is not None:
            return problem
    host = _authority_host(authority, idn=idn)
    if isinstance(host, str):
        return host
    return _agrees_with_urllib(value, host)


_USERINFO = re.compile(r"[A-Za-z0-9_~!$&'()*+,;=-]+")


def _userinfo_problem(userinfo: str, authority: str) -> str | None:
    """A plain ``user`` before the one '@' (``https://git@host/``) is read the same way by every
    parser and cannot pass for a host; anything with a dot, a colon (a password, or a port-like
    ``evil.com:443@``), a percent-escape or a second '@' (``https://allowed.com@evil.com/``) can
    fool a reader or a parser about the host."""
    if "@" in authority:
        return "it has more than one '@' in its userinfo (parsers split the host at different ones)"
    if not _USERINFO.fullmatch(userinfo):
        return (
            f"it has the userinfo {userinfo!r} before '@', which reads like a host or holds characters parsers "
            "decode differently (only a plain user name is accepted, no password)"
        )
    return None


@cache_short
def bare_host(value: str, *, idn: bool = False) -> Host | str:
    """The host of ``value`` when it is a canonical ``host[:port][/path][?query][#fragment]``
    without a scheme, or a canonical http(s) URL; otherwise a phrase saying why not."""
    if not value:
        return "it is empty"
    if len(value) > MAX_URL:
        return f"it is longer than {MAX_URL} characters"
    scheme = _SCHEME.match(value)
    if scheme is not None and value[scheme.end() : scheme.end() + 2] == "//":
        return url_host(value, idn=idn)
    problem = _whole_value_problem(value)
    if problem is not None:
        return problem
    if value.startswith(("/", "?", "#")):
        return "it has no host before its path"
    authority, _ = _split_authority(value)
    if "@" in authority:
        return "it has userinfo ('@' before the host), which hides the real host from readers and some parsers"
    host = _authority_host(authority, idn=idn)
    if isinstance(host, str):
        return host
    return _agrees_with_urllib("http://" + value, host)


def _agrees_with_urllib(url: str, host: Host) -> Host | str:
    """A second, independent reading of the host; any disagreement refuses the value."""
    try:
        parts = urlsplit(url)
        name = parts.hostname
        _ = parts.port
    except ValueError:
        return "urllib.parse refuses it, so consumers disagree on it"
    want = host.name[1:-1] if host.kind == "ipv6" else host.name
    if name != want:
        return f"urllib.parse reads its host as {name!r}, not {want!r}"
    return host


def url_host_candidates(value: str) -> list[str]:
    """Raw host strings that some lenient parser could find in ``value`` (for restricting checks)."""
    # WHATWG parsers strip C0 controls and spaces at both ends and drop tabs and newlines
    # anywhere; C libraries stop at a NUL.
    texts = {value, value.strip(), re.sub(r"[\t\n\r]", "", value).strip(_C0_AND_SPACE), value.split("\x00")[0]}
    folded = {unicodedata.normalize("NFKC", t) for t in texts}
    texts |= folded
    texts |= {percent_decode(t) for t in texts}
    texts |= {t.replace("\\", "/") for t in texts}
    out: list[str] = []
    for text in texts:
        for start in _host_starts(text):
            for delimiters in (r"[/?#]", r"[/\\?#]"):
                match = re.search(delimiters, text[start:])
                authority = text[start:] if match is None else text[start : start + match.start()]
                for host_port in {authority.rpartition("@")[2], authority.partition("@")[2].partition("@")[0], authority}:
                    out.extend(_without_port(host_port))
    return out


def _host_starts(text: str) -> list[int]:
    """Where a host may begin: after a scheme and any slashes, at the start of a bare value, or
    after any '//' (a scheme-relative reference, as redirects and some parsers read it)."""
    starts = [len(text) - len(text.lstrip("/\\"))]
    starts += [m.end() for m in re.finditer(r"[/\\]{2,}", text)]
    scheme = _SCHEME.match(text.lstrip())
    if scheme is not None:
        offset = len(text) - len(text.lstrip()) + scheme.end()
        rest = text[offset:]
        starts.append(offset + len(rest) - len(rest.lstrip("/\\")))
    return starts


def _without_port(host_port: str) -> tuple[str, ...]:
    if host_port.startswith("[") and "]" in host_port:
        return (host_port[: host_port.index("]") + 1],)
    if ":" not in host_port:
        return (host_port,)
    return (host_port.partition(":")[0], host_port.rpartition(":")[0])
