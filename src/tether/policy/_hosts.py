"""Host names: their canonical form, the patterns a policy lists, and every plausible reading.

A host is *canonical* when every consumer (browsers and other WHATWG URL parsers,
``urllib``, ``httpx``/``urllib3``, resolvers, mail software) reads it as the same
name without normalising it: ASCII letters, digits and hyphens in dot-separated
labels of 1 to 63 characters, no trailing dot, no percent-escapes, and, when the
last label is numeric, a plain dotted-decimal IPv4 address. Letter case is the
only difference allowed, since DNS names are case-insensitive. Internationalised
names count only in their A-label form (``xn--...``), only when the policy opts
in, and only when the A-label decodes and re-encodes to itself.

:func:`host_readings` goes the other way: it lists every host a lenient consumer
could make of a messy string (fullwidth letters folded, ideographic full stops
read as dots, zero-width characters dropped, numeric IPv4 forms decoded), for the
checks where a match makes a decision stricter.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Concatenate, Literal, ParamSpec, TypeVar

import idna

_LABEL_CHARS = re.compile(r"[A-Za-z0-9-]+")
_DECIMAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})

_CONTROL_NAMES = {0x00: "NULL", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED", 0x0D: "CARRIAGE RETURN", 0x7F: "DELETE"}

HostKind = Literal["name", "ipv4", "ipv6"]
T = TypeVar("T")
P = ParamSpec("P")


def cache_short(fn: Callable[Concatenate[str, P], T]) -> Callable[Concatenate[str, P], T]:
    """Memoise ``fn(value, ...)`` for values up to 4096 characters; longer ones (rare, and up to
    the policy's argument limit) are computed each time so the cache cannot hold megabytes."""
    cached = lru_cache(maxsize=8192)(fn)

    @wraps(fn)
    def call(value: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if len(value) > 4096:
            return fn(value, *args, **kwargs)
        return cached(value, *args, **kwargs)  # type: ignore[arg-type]

    return call


def describe_char(ch: str) -> str:
    """``U+FF45 FULLWIDTH LATIN SMALL LETTER E``: how reasons name a character."""
    return f"U+{ord(ch):04X} {unicodedata.name(ch, None) or _CONTROL_NAMES.get(ord(ch), '<control>')}"


def char_problem(text: str) -> str | None:
    """Why ``text`` holds a character no canonical ASCII name may hold (None when all are printable ASCII)."""
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            return f"contains the control character {describe_char(ch)}"
        if ch == " ":
            return "contains a space"
        if code > 0x7E:
            return f"contains {describe_char(ch)}, {_non_ascii_kind(ch)}"
    return None


def _non_ascii_kind(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cf":
        return "an invisible formatting character"
    if category.startswith("Z") or ch.isspace():
        return "a space character"
    if category.startswith("C"):
        return "a control character"
    folded = unicodedata.normalize("NFKC", ch)
    if folded != ch:
        return f"a compatibility character that some consumers fold to {folded!r}"
    return "which is not ASCII (internationalised names are accepted only as xn-- A-labels, with idn: true)"


@dataclass(frozen=True, slots=True)
class Host:
    """A canonical host, lower-cased."""

    name: str
    """``example.com``, ``192.0.2.1`` or ``[2001:db8::1]``."""
    kind: HostKind
    """Whether it is a DNS name or an IP address literal."""


def canonical_host(text: str, *, idn: bool) -> Host | str:
    """The host ``text`` names, when it is canonical; otherwise a phrase saying why not."""
    if not text:
        return "its host is empty"
    if text.startswith("["):
        return _ipv6(text)
    bad = char_problem(text)
    if bad is not None:
        return f"its host {bad}"
    for ch in "%\\@:[]/?#_":
        if ch in text:
            return f"its host contains {ch!r}, which a host name may not contain"
    if text.endswith("."):
        return "its host ends with a dot (the fully qualified form, which consumers compare differently)"
    if len(text) > 253:
        return "its host is longer than 253 characters"
    labels = text.lower().split(".")
    if "" in labels:
        return "its host has an empty label (two dots in a row, or a leading dot)"
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        if len(labels) == 4 and all(_DECIMAL_OCTET.fullmatch(p) and int(p) <= 255 for p in labels):
            return Host(".".join(labels), "ipv4")
        return "its host is a numeric address not written as four decimal numbers (parsers read octal, hex and short forms differently)"
    for label in labels:
        problem = _label_problem(label, idn=idn)
        if problem is not None:
            return f"its host {problem}"
    return Host(".".join(labels), "name")


def _label_problem(label: str, *, idn: bool) -> str | None:
    if len(label) > 63:
        return f"has a label longer than 63 characters ({label[:20]}...)"
    if not _LABEL_CHARS.fullmatch(label):
        bad = next(ch for ch in label if not (ch.isascii() and (ch.isalnum() or ch == "-")))
        return f"contains {bad!r}, which is not a letter, digit or hyphen"
    if label.startswith("-") or label.endswith("-"):
        return f"has a label that starts or ends with a hyphen ({label!r})"
    if label[2:4] == "--":
        if not label.startswith("xn--"):
            return f"has a label with hyphens in the third and fourth places, which are reserved ({label!r})"
        if not idn:
            return f"has the internationalised label {label!r}; a policy accepts xn-- labels only with idn: true"
        if not _round_trips(label):
            return f"has the label {label!r}, which is not a valid IDNA 2008 A-label"
    return None


def _round_trips(label: str) -> bool:
    try:
        return idna.encode(idna.decode(label)).decode("ascii") == label
    except (idna.IDNAError, UnicodeError, ValueError):
        return False


def _ipv6(text: str) -> Host | str:
    if not text.endswith("]"):
        return "its host has an unclosed '['"
    inner = text[1:-1]
    if "%" in inner:
        return "its host is an IPv6 address with a zone (%), which parsers treat differently"
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        return "its host is not a valid IPv6 address"
    if address.compressed != inner.lower() or address.ipv4_mapped is not None:
        return f"its host is an IPv6 address not in its canonical form ([{address.compressed}])"
    return Host(f"[{address.compressed}]", "ipv6")


# ---------------------------------------------------------------- patterns


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of a host or domain allow-list.

    ``example.com`` matches that host only; ``*.example.com`` matches hosts with
    exactly one more label (``a.example.com``); ``**.example.com`` matches hosts
    with one or more (``a.example.com``, ``a.b.example.com``). Neither wildcard
    matches ``example.com`` itself.
    """

    base: str
    """The host after the wildcard, lower-case ASCII (A-labels for IDN)."""
    wildcard: Literal["", "*", "**"]
    """No wildcard, exactly one label, or one or more labels."""

    @classmethod
    def parse(cls, entry: str, *, idn: bool) -> HostPattern:
        """Read a policy entry; ``ValueError`` says what is wrong with it."""
        wildcard: Literal["", "*", "**"] = ""
        base = entry
        if entry.startswith("**."):
            wildcard, base = "**", entry[3:]
        elif entry.startswith("*."):
            wildcard, base = "*", entry[2:]
        if "*" in base:
            raise ValueError(f"host entry {entry!r}: a wildcard may only be the whole first label ('*.' or '**.')")
        if ":" in base and not base.startswith("["):
            with contextlib.suppress(ValueError):
                base = f"[{ipaddress.IPv6Address(base).compressed}]"  # an IPv6 entry written without brackets
        if idn and not base.isascii():
            try:
                base = idna.encode(base.lower()).decode("ascii")
            except (idna.IDNAError, UnicodeError, ValueError) as exc:
                raise ValueError(f"host entry {entry!r} is not a valid internationalised name: {exc}") from exc
        host = canonical_host(base, idn=idn)
        if isinstance(host, str):
            raise ValueError(f"host entry {entry!r} is not a canonical host: {host}")
        if wildcard and host.kind != "name":
            raise ValueError(f"host entry {entry!r}: wildcards apply to names, not IP addresses")
        return cls(host.name, wildcard)

    def matches(self, host: str) -> bool:
        """Whether the lower-case ``host`` is allowed by this entry."""
        if not self.wildcard:
            return host == self.base
        head, dot, tail = host.partition(".")
        if self.wildcard == "*":
            return bool(dot) and bool(head) and tail == self.base
        return host.endswith("." + self.base) and len(host) > len(self.base) + 1

    def __str__(self) -> str:
        return f"{self.wildcard}.{self.base}" if self.wildcard else self.base


# ---------------------------------------------------------------- lenient readings


def host_readings(candidates: Iterable[str]) -> frozenset[str]:
    """Every lower-case host a lenient consumer could make of these raw host strings."""
    out: set[str] = set()
    for raw in candidates:
        for text in {raw, raw.strip()}:
            _add_readings(text, out)
    out.discard("")
    return frozenset(out)


def _add_readings(text: str, out: set[str]) -> None:
    if text.startswith("[") and "]" in text:
        out.add(text[: text.index("]") + 1].lower())
        return
    plain = text.lower()
    out.add(plain)
    if text.isascii():
        # Nothing to fold: UTS #46 only lower-cases ASCII, and an invalid name reaches no host.
        for form in {plain, plain.strip(".")}:
            out.add(form)
            ipv4 = whatwg_ipv4(form)
            if ipv4 is not None:
                out.add(ipv4)
        return
    folded = "".join(ch for ch in unicodedata.normalize("NFKC", text.translate(_DOTS)) if unicodedata.category(ch) != "Cf")
    folded = folded.translate(_DOTS).lower()
    # casefold() maps 'ß' to 'ss', as IDNA 2003 (older browsers and Python's own codec) does.
    for form in {plain, folded, folded.strip("."), folded.casefold().strip(".")}:
        out.add(form)
        with contextlib.suppress(idna.IDNAError, UnicodeError, ValueError):
            out.add(idna.encode(form, uts46=True).decode("ascii"))
        ipv4 = whatwg_ipv4(form)
        if ipv4 is not None:
            out.add(ipv4)


def whatwg_ipv4(host: str) -> str | None:
    """The dotted-decimal address a WHATWG URL parser reads in ``host`` (``0x7f.1`` -> ``127.0.0.1``), if any."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or len(parts) > 4 or not _NUMERIC_LABEL.fullmatch(parts[-1]):
        return None
    numbers: list[int] = []
    for part in parts:
        if not _NUMERIC_LABEL.fullmatch(part):
            return None  # int() would also take signs, spaces and underscores
        try:
            if part[:2].lower() == "0x":
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            return None
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))
