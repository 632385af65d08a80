"""Principals (who may read data) in one canonical form, so that two spellings of one reader compare equal
and nothing else does.

A principal is an email address or a plain account name (a chat user, a channel). The canonical form:

* **Email addresses**: ``local@domain`` with one ``@``; the local part an ASCII dot-atom, lower-cased
  (mail systems treat it case-insensitively in practice); the domain lower-cased, one trailing dot
  dropped, and written in IDNA (``bücher.de`` -> ``xn--bcher-kva.de``), so a Unicode domain and its
  ``xn--`` form are one reader, and a look-alike domain (a Cyrillic ``\u0430`` for the ``a`` of ``example.com``) is a
  different one, as it is for mail.
* **Account names**: ASCII letters, digits and ``. _ - '`` (and single inner spaces), lower-cased.
* **Refused** (no canonical form, ``None``): anything with a control, format (zero-width, bidi) or
  other invisible character, a non-ASCII local part or account name (full-width letters look like
  ``bob`` and are not), display names, quotes, comments, routes (``%``, ``!``), address literals,
  more than one ``@``, empty or over-long text. A refused *reader* in the data is dropped (fewer
  readers: more restrictive); a refused *recipient* is outside every reader set.

**Sub-addresses are other principals.** ``bob+news@x.com`` is not ``bob@x.com``: many providers
deliver both to one mailbox, others treat ``+`` as an ordinary character or route it to another
person, and Tether cannot tell which; counting them apart can cost an ask, never a leak. The same
holds for dots in a local part (``b.ob@gmail.com``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import idna

MAX_READERS = 1024
"""Readers one label keeps (the first in sorted order): dropping readers only restricts."""

_ATEXT = r"[a-z0-9#$&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_NAME = re.compile(r"[a-z0-9._'-]+(?: [a-z0-9._'-]+)*")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def canonical_principal(text: object) -> str | None:
    """The canonical form of one principal, or ``None`` when ``text`` is not a plain one (module docstring)."""
    if not isinstance(text, str) or not text or len(text) > 254:
        return None
    if not text.isascii():
        return _idn_email(text)
    value = text.strip(" \t").lower()
    if not value or not value.isprintable():
        return None
    if "@" not in value:
        return value if _NAME.fullmatch(value) else None
    local, _, domain = value.partition("@")
    if not local or len(local) > 64 or "@" in domain or not _DOT_ATOM.fullmatch(local):
        return None
    host = _host(domain)
    return None if host is None else f"{local}@{host}"


def _idn_email(text: str) -> str | None:
    """An address whose only non-ASCII characters are in its domain (an internationalised domain)."""
    value = text.strip(" \t")
    local, at, domain = value.partition("@")
    if not at or not local.isascii() or not value.isprintable():
        return None
    domain = domain.lower().removesuffix(".")
    try:
        ascii_domain = idna.encode(domain, uts46=False).decode("ascii")
        if idna.decode(ascii_domain) != domain:
            return None  # written with characters IDNA rewrites (an ideographic full stop, ...)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return canonical_principal(f"{local}@{ascii_domain}")


def _host(domain: str) -> str | None:
    domain = domain.removesuffix(".")
    if not domain or len(domain) > 253:
        return None
    labels = domain.split(".")
    if not all(_HOST_LABEL.fullmatch(part) for part in labels):
        return None
    for part in labels:
        if part.startswith("xn--"):
            try:  # an A-label must decode to a valid U-label and back to itself
                if idna.encode(idna.decode(part)).decode("ascii") != part:
                    return None
            except (idna.IDNAError, UnicodeError, ValueError):
                return None
    return domain


def canonical_readers(values: Iterable[object]) -> frozenset[str]:
    """The canonical readers among ``values`` (refused ones dropped), at most :data:`MAX_READERS`."""
    found = {p for p in map(canonical_principal, values) if p is not None}
    if len(found) > MAX_READERS:
        found = set(sorted(found)[:MAX_READERS])
    return frozenset(found)
