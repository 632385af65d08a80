"""Properties of the matchers, checked with hypothesis against independent parsers.

* Whatever a matcher accepts, other consumers read the same way: ``urllib.parse``, ``httpx``
  and ``urllib3`` find the same host in an accepted URL; ``email-validator`` finds the same
  domain in an accepted address; an accepted path has no ``..`` and differs from the form
  ``normpath`` gives only by ``.`` and empty segments (which every POSIX consumer reads alike).
* Whatever the permitting side accepts, the restricting side matches too.
* No input makes a matcher, or ``validate_arg`` on any nesting, raise.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

import httpx
import urllib3.util
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tether import Policy
from tether.policy import validate_arg
from tether.policy._matchers import EmailDomainIn, HostIn, PathGlob, Paths, PathUnder, UrlHostIn

# Characters that break parsers or fool readers, mixed into otherwise plausible values.
TRICKY = (
    "@:/\\?#%.[]-_ \t\r\n\x00\x7f~$`{},;!\"'()<>*"
    "\u3002\uff0e\uff61\ufe52\uff0f\uff1f\uff03\uff20\ufe6b\u2215\u2044\u200b\u200c\u200d\u00ad\ufeff\u202e"
    "\uff45\u0430\u0435\u2170\u2169\u00df\u00fc\u212a\u0301\u00a0\u3000"
)
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
SAFE_TEXT = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=:@/?", max_size=12)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[str]) -> str:
    """A valid value, then up to three characters from TRICKY inserted or swapped in anywhere."""
    text = draw(valid)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(text)))
        ch = draw(st.sampled_from(TRICKY))
        text = text[:i] + ch + text[i + (1 if draw(st.booleans()) else 0) :]
    return text


@st.composite
def valid_url(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https://", "http://", "HTTPS://"]))
    host = draw(st.sampled_from(["example.com", "EXAMPLE.com", "127.0.0.1", "docs.example", "evil.com"]))
    prefix = ".".join(draw(st.lists(LABEL, max_size=3)))
    host = f"{prefix}.{host}" if prefix else host
    port = draw(st.sampled_from(["", ":443", ":8080"]))
    rest = draw(st.sampled_from(["", "/", "/a/b", "?q=1", "#x"])) + draw(SAFE_TEXT)
    return scheme + host + port + (rest if rest.startswith(("/", "?", "#")) else "/" + rest)


@st.composite
def valid_address(draw: st.DrawFn) -> str:
    local = draw(st.from_regex(r"[A-Za-z0-9+_=-]{1,8}(\.[A-Za-z0-9+_-]{1,5}){0,2}", fullmatch=True))
    prefix = ".".join(draw(st.lists(LABEL, max_size=2)))
    domain = draw(st.sampled_from(["example.com", "Example.COM", "evil.com"]))
    return f"{local}@{prefix + '.' if prefix else ''}{domain}"


@st.composite
def valid_path(draw: st.DrawFn) -> str:
    start = draw(st.sampled_from(["/home/ana/docs/", "~/work/", "docs/", "/home/ana/", "~/.ssh/", "/etc/", "~/"]))
    names = draw(
        st.lists(st.from_regex(r"[A-Za-z0-9 _.-]{1,8}", fullmatch=True).filter(lambda n: n.strip(".") and n == n.strip()), max_size=3)
    )
    return start + "/".join(names)


def url_like() -> st.SearchStrategy[str]:
    return mutated(valid_url()) | mutated(valid_url().map(lambda u: u.split("://", 1)[1]))


def address_like() -> st.SearchStrategy[str]:
    return mutated(valid_address())


def path_like() -> st.SearchStrategy[str]:
    return mutated(valid_path())


URL = UrlHostIn(["example.com", "*.example.com", "**.docs.example", "127.0.0.1"])
BARE = HostIn(["example.com", "*.example.com"])
EMAIL = EmailDomainIn(["example.com", "*.example.com"])
ANA = Paths("/home/ana", "/home/ana")
UNDER = PathUnder(["/home/ana/docs", "~/work"], ANA)
GLOB = PathGlob(["~/.ssh/**", "**/*.pem"], ANA)


def _allowed_host(host: str) -> bool:
    labels = host.split(".")
    return host in ("example.com", "127.0.0.1") or (len(labels) == 3 and host.endswith(".example.com")) or host.endswith(".docs.example")


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(url_like(), st.text(max_size=60)))
@example("https://example.com/")
@example("https://a.example.com:8443/x?y#z")
def test_accepted_urls_have_one_host_for_every_parser(value: str) -> None:
    if not URL.accepts(value):
        return
    assert "\\" not in value and not any(ch.isspace() or ord(ch) < 0x20 for ch in value)
    host = urlsplit(value).hostname
    assert host is not None and host.isascii() and _allowed_host(host)
    assert httpx.URL(value).host == host
    assert (urllib3.util.parse_url(value).host or "").lower() == host
    assert URL.may_match(value)


@settings(max_examples=400)
@given(st.one_of(url_like(), st.text(max_size=40)))
def test_accepted_bare_hosts_have_one_host_for_every_parser(value: str) -> None:
    if not BARE.accepts(value):
        return
    url = value if "://" in value else "http://" + value
    host = httpx.URL(url).host
    assert host in ("example.com",) or (host.endswith(".example.com") and host.count(".") == 2)
    assert (urllib3.util.parse_url(url).host or "").lower() == host
    assert BARE.may_match(value)


@settings(max_examples=600)
@given(st.one_of(address_like(), st.text(max_size=40)))
@example("user.name+tag@example.com")
@example("A@Sub.Example.Com")
def test_accepted_addresses_are_plain_ascii_with_one_at(value: str) -> None:
    if not EMAIL.accepts(value):
        return
    assert value.isascii()
    assert value.count("@") == 1
    domain = value.split("@")[1].lower()
    assert domain == "example.com" or (domain.endswith(".example.com") and domain.count(".") == 2)
    try:
        checked = validate_email(value, check_deliverability=False, allow_quoted_local=False, allow_display_name=False)
    except EmailNotValidError as exc:  # pragma: no cover - shown when it fails
        raise AssertionError(f"{value!r} accepted by the matcher, refused by email-validator: {exc}") from exc
    assert checked.ascii_domain.lower() == domain
    assert EMAIL.may_match(value)


@settings(max_examples=600)
@given(st.one_of(path_like(), st.text(max_size=40)))
@example("/home/ana/docs/report.pdf")
def test_accepted_paths_are_already_normal_and_under_a_root(value: str) -> None:
    if not UNDER.accepts(value):
        return
    assert value == value.strip() and unicodedata.normalize("NFKC", value) == value
    assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
    assert "\\" not in value and not re.search("%[0-9A-Fa-f]{2}", value)
    expanded = "/home/ana" + value[1:] if value.startswith("~/") or value == "~" else value
    absolute = expanded if expanded.startswith("/") else "/home/ana/" + expanded
    assert ".." not in absolute.split("/")  # a lexical reading and the system may differ there
    # Only '.' and empty segments are left to collapse, which every POSIX consumer reads alike.
    absolute = posixpath.normpath(absolute)
    assert absolute.startswith(("/home/ana/docs", "/home/ana/work"))
    assert absolute in ("/home/ana/docs", "/home/ana/work") or absolute.startswith(("/home/ana/docs/", "/home/ana/work/"))
    assert UNDER.may_match(value)


@settings(max_examples=300)
@given(st.one_of(path_like(), st.text(max_size=40)))
def test_a_glob_that_accepts_also_may_match(value: str) -> None:
    if GLOB.accepts(value):
        assert GLOB.may_match(value)


NUMERIC_HOST = st.lists(st.from_regex(r"[-+ _0-9xXa-f]{0,6}", fullmatch=True), min_size=1, max_size=5).map(
    lambda p: "http://" + ".".join(p) + "/"
)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=120), url_like(), address_like(), path_like(), st.text(alphabet=TRICKY, max_size=30), NUMERIC_HOST))
@example("http://0x-1.0x7f.0.1/")
def test_matchers_never_raise(value: str) -> None:
    for matcher in (URL, BARE, EMAIL, UNDER, GLOB):
        matcher.refusal(value)
        matcher.may_match(value)


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_nothing_escapes_the_root(suffix: str) -> None:
    value = "/home/ana/docs/" + suffix
    if UNDER.accepts(value):
        assert posixpath.normpath(value.rstrip("/")).startswith("/home/ana/docs")
        assert ".." not in value.split("/")


POLICY = Policy.from_yaml(
    """
tether: 1
name: props
home: /home/ana
tools:
  t:
    effect: read
    args:
      urls: {type: array, url_host_in: ["example.com"]}
"""
)
ONLY_EXAMPLE = UrlHostIn(["example.com"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | url_like(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)


def _leaves_ok(value: Any) -> bool:
    if isinstance(value, list):
        return all(_leaves_ok(item) for item in value)
    return isinstance(value, str) and ONLY_EXAMPLE.accepts(value)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(JSON, max_size=4))
def test_an_array_matcher_passes_exactly_when_every_leaf_at_any_depth_passes(value: list[Any]) -> None:
    spec = POLICY.tools["t"].args["urls"]
    error = validate_arg(spec, value, "urls")
    assert (error is None) == _leaves_ok(value), (value, error)


@given(st.lists(st.text(max_size=3), min_size=1, max_size=3))
def test_a_list_of_refused_values_is_refused_at_every_depth(junk: list[str]) -> None:
    assume(not any(URL.accepts(j) for j in junk))
    spec = POLICY.tools["t"].args["urls"]
    value: Any = junk
    for _ in range(4):
        assert validate_arg(spec, value, "urls") is not None
        value = [value]
