"""The domain of an email address, accepted only in the plain form every mail system agrees on.

A canonical address is ``local@domain`` with exactly one ``@``: the local part is
an ASCII dot-atom (RFC 5322 ``atext`` runs joined by single dots, at most 64
characters) without ``%`` or ``!``, which some relays still read as source routes;
no quoted local parts, comments, display names, angle brackets or address
literals; the domain is a canonical host name (see :mod:`tether.policy._hosts`).
"""

from __future__ import annotations

import re
import unicodedata

from tether.flow import percent_decode
from tether.policy._hosts import Host, cache_short, canonical_host, char_problem

_ATEXT = r"[A-Za-z0-9#$&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
LONGEST_READ = 1024
"""Where a match restricts, longer values count as matching (mail software reads no sane address
out of them, and reading every route in them would cost more than a decision may)."""
_NAME_RUN = re.compile(r"(?:[A-Za-z0-9.-]|[^\x00-\x7f\s])+")


@cache_short
def email_domain(value: str, *, idn: bool = False) -> Host | str:
    """The domain of ``value`` when it is one canonical address; otherwise a phrase saying why not."""
    if not value:
        return "it is empty"
    if len(value) > 254:
        return "it is longer than 254 characters"
    bad = char_problem(value)
    if bad is not None:
        return f"it {bad}"
    count = value.count("@")
    if count != 1:
        return "it has no '@'" if count == 0 else f"it has {count} '@' characters (one address has exactly one)"
    local, _, domain = value.partition("@")
    problem = _local_problem(local)
    if problem is not None:
        return f"its local part {problem}"
    if not domain:
        return "it has no domain after the '@'"
    if domain.startswith("["):
        return "it has an address literal ([...]) instead of a domain"
    host = canonical_host(domain, idn=idn)
    if isinstance(host, str):
        return host.replace("its host", "its domain", 1)
    if host.kind != "name":
        return "it has an IP address instead of a domain"
    return host


def _local_problem(local: str) -> str | None:
    if not local:
        return "is empty"
    if len(local) > 64:
        return "is longer than 64 characters"
    if local.startswith('"'):
        return "is quoted (quoted local parts are read differently by mail software)"
    for ch, what in (("%", "a '%' source route"), ("!", "a '!' (UUCP) route"), ("(", "a comment"), ("<", "an angle bracket")):
        if ch in local:
            return f"contains {what}"
    if not _DOT_ATOM.fullmatch(local):
        bad = next((ch for ch in local if not re.fullmatch(_ATEXT, ch) and ch != "."), None)
        if bad is not None:
            return f"contains {bad!r}, which a plain address does not"
        return "has a leading, trailing or doubled dot"
    return None


def email_domain_candidates(value: str) -> list[str]:
    """Raw domains that some lenient mail parser could find in ``value`` (for restricting checks).

    Header parsers skip stray punctuation after an ``@``, drop spaces inside a domain and read
    routes (``user%relay@host``, ``relay!user@host``) and display names in many ways, so once a
    value holds an ``@`` every name-like run in it is a candidate.
    """
    texts = {value, value.strip(), value.split("\x00")[0]}
    texts |= {unicodedata.normalize("NFKC", t) for t in texts}
    texts |= {"".join(ch for ch in t if unicodedata.category(ch) != "Cf" and ch not in "\r\n\t") for t in texts}
    texts |= {percent_decode(t) for t in texts}
    texts |= {"".join(t.split()) for t in texts}
    out: set[str] = set()
    for text in texts:
        if "@" in text:
            out.update(_NAME_RUN.findall(text))
    return sorted(out)
