"""Argument matchers read a value the way the sink will, and constraints mean what JSON Schema means.

A URL is parsed as the HTTP client will parse it, a host compared as IDNA 2008 resolves it, a path
read in every way a tool may normalise it; `pattern`'s `$` and `const` follow ECMA-262 and JSON
equality. Findings: docs/security-review.md (F3, F4, F5, F8, F9, F13, F14).
"""

from __future__ import annotations

import os.path

import httpx
import idna
import pytest
from security_scenarios import bank_session

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.policy import _matchers as m

URL_POLICY = """
tether: 1
name: fetcher
tools:
  fetch:
    effect: read
    args:
      url: {type: string, required: true, url_host_in: ["company.com", "*.company.com"]}
"""


@pytest.mark.parametrize(
    "url",
    [
        "https://company.com%2F@evil.com/steal",
        "https://company.com%3F@evil.com/steal",
        "https://company.com%23@evil.com/steal",
        "https://company.com%5C@evil.com/steal",
        "https://company.com\uff0f@evil.com/steal",  # FULLWIDTH SOLIDUS, NFKC -> '/'
        "https://company.com\uff1f@evil.com/steal",  # FULLWIDTH QUESTION MARK, NFKC -> '?'
    ],
)
def test_F3_url_encoded_delimiter_hides_userinfo(url: str) -> None:
    """Finding F3 (round 1, high): an encoded delimiter cannot hide the userinfo from `url_host_in`.

    url_host_in percent-decoded / NFKC-normalised the whole URL *before* parsing it: the matcher saw
    host company.com, every HTTP client (WHATWG, urllib3, httpx) sends the request to evil.com.
    """
    assert httpx.URL(url).host == "evil.com"  # where the request really goes
    s = Guard(Policy.from_yaml(URL_POLICY), SQLiteStore(":memory:")).start_session("read the company wiki")
    d = s.check("fetch", {"url": url})
    assert d.verdict == "deny", f"{url!r} reaches evil.com but was allowed"


def test_F4_url_backslash_parser_differential() -> None:
    """Finding F4 (round 1, medium): a backslash is not read as '/'.

    Read "as browsers do", but httpx (used by the MCP SDK and most modern Python agents) treats it as
    part of the userinfo: the request goes to evil.com.
    """
    url = "https://company.com\\@evil.com/steal"
    assert httpx.URL(url).host == "evil.com"
    assert not m.url_host_in(url, ["company.com"]), "matcher and httpx disagree on the host"


def test_F5_idna2003_deviation_characters() -> None:
    """Finding F5 (round 1, high): hosts are compared in IDNA 2008 / UTS #46 non-transitional form.

    Python's IDNA 2003 codec maps the deviation character 'ß' to 'ss'; browsers and httpx resolve
    busineß.com to xn--busine-gta.com, a different, registrable domain.
    """
    assert idna.encode("busineß.com", uts46=True) == b"xn--busine-gta.com"
    assert not m.url_host_in("https://busineß.com/upload", ["business.com"])
    assert not m.email_domain_in("ceo@busineß.com", ["business.com"])


def test_F8_relative_path_evades_secret_label() -> None:
    """Finding F8 (round 1, high): a relative path gets the label of the file it names.

    path_under resolved relative paths against the root (~), path_glob (output `labels`) against '/':
    read_file(".ssh/id_rsa") was allowed and, for a tool running in the home directory, returned the
    private key labelled plain `trusted`. Denying relative paths is an acceptable fix too.
    """
    s = bank_session()
    call = ToolCall("read_file", {"path": ".ssh/id_rsa"})
    d = s.check(call)
    if d.verdict != "allow":
        return  # denying relative paths is an acceptable fix
    lab = s.record_result(call.id, "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA")
    assert "secret" in lab.tags, f"~/.ssh/id_rsa read as a relative path got label {lab.describe()}"


@pytest.mark.parametrize("path", ["/home/user/a%2Fb%2Fc/../../../etc/passwd", "/home/user/a\uff0fb\uff0fc/../../../etc/passwd"])
def test_F9_path_under_decoded_separators(path: str) -> None:
    """Finding F9 (round 1, high for tools that normalise lexically): decoded separators do not climb out of `path_under`.

    path_under decoded %2F and NFKC (U+FF0F) into extra separators before collapsing '..', while the
    sink sees one directory name: the ".." then climbed out of the root (realpath() gives /etc/passwd).
    """
    assert os.path.realpath(path) == "/etc/passwd"
    d = bank_session().check("read_file", {"path": path})
    assert d.verdict == "deny", f"{path!r} escapes /home/user but was allowed"


def test_F13_pattern_dollar_allows_trailing_newline() -> None:
    """Finding F13 (round 1, low/medium): `pattern`'s `$` is the end of input (ECMA-262), as the docs promise.

    Python's re.search `$` also matches before a final newline: "^...$" admitted a trailing newline.
    """
    d = bank_session("Pay 20 to GB29NWBK60161331926819").check("send_money", {"recipient": "GB29NWBK60161331926819\n", "amount": 20})
    assert d.verdict == "deny"


def test_F14_const_treats_true_as_one() -> None:
    """Finding F14 (round 1, low): `const` uses JSON equality: True does not satisfy const: 1 (booleans are never numbers)."""
    pol = Policy.from_yaml("tether: 1\nname: c\ntools:\n  t:\n    effect: write\n    args:\n      level: {const: 1}\n")
    s = Guard(pol, SQLiteStore(":memory:")).start_session("x")
    assert s.check("t", {"level": True}).verdict == "deny"
