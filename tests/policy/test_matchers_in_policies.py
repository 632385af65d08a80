"""Matchers as a policy uses them: every nesting of an argument is checked, and each kind of
rule errs on its own safe side (constraints and ``unless`` accept only canonical values; ``when``
of labels, asks and denies matches any reading; ``not`` flips the side)."""

from __future__ import annotations

from typing import Any

import pytest

from tether import Guard, Policy, SQLiteStore, ToolCall
from tether.errors import PolicyError

POLICY = """
tether: 1
name: matchers
home: /home/ana
tools:
  fetch_all:
    effect: read
    args:
      urls: {type: array, url_host_in: ["docs.example.com"]}
  mail_all:
    effect: write
    args:
      to: {type: array, email_domain_in: ["company.com"]}
  read_all:
    effect: read
    args:
      paths: {type: array, path_under: ["~/docs"]}
  read_any:
    effect: read
    args:
      path: {path_under: ["~/docs"]}
  fetch_typed:
    effect: read
    args:
      urls:
        type: array
        url_host_in: ["docs.example.com", "*.example.com"]
        items: {type: array, items: {type: string, url_host_in: ["docs.example.com", "api.example.com"]}}
  browse:
    effect: read
    args:
      site: {type: string, required: true, host_in: ["www.example.com"]}
  fetch_idn:
    effect: read
    args:
      url: {type: string, required: true, url_host_in: ["b\u00fccher.example"], idn: true}
"""


def _session(text: str = POLICY, task: str = "work") -> Any:
    return Guard(Policy.from_yaml(text), SQLiteStore(":memory:")).start_session(task)


EVIL_URL = "https://evil.example.net/x"
NESTINGS = [
    [EVIL_URL],
    [[EVIL_URL]],
    [[[EVIL_URL]]],
    ["https://docs.example.com/ok", [EVIL_URL]],
    [["https://docs.example.com/ok"], [[[[EVIL_URL]]]]],
    [{"url": EVIL_URL}],
    [[{"u": "https://docs.example.com/"}]],
    [{EVIL_URL: 1}],
    [1],
    [True],
    [None],
    {"url": EVIL_URL},
    [[], [EVIL_URL]],
]


@pytest.mark.parametrize("value", NESTINGS, ids=repr)
def test_array_matchers_reach_every_nesting(value: Any) -> None:
    d = _session().check("fetch_all", {"urls": value})
    assert d.verdict == "deny", d.explain()


@pytest.mark.parametrize(
    ("tool", "arg", "bad"),
    [("mail_all", "to", "eve@evil.example.net"), ("read_all", "paths", "/etc/shadow"), ("read_all", "paths", "~/docs/../.ssh/id_rsa")],
)
@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_every_matcher_reaches_nested_lists(tool: str, arg: str, bad: str, depth: int) -> None:
    value: Any = bad
    for _ in range(depth):
        value = [value]
    d = _session().check(tool, {arg: value})
    assert d.verdict == "deny", d.explain()


def test_nested_lists_of_good_values_pass() -> None:
    s = _session()
    assert s.check("fetch_all", {"urls": [["https://docs.example.com/a"], "https://docs.example.com/b", []]}).verdict == "allow"
    assert s.check("mail_all", {"to": [["bob@company.com"], ["a.b+c@company.com"]]}).verdict == "allow"
    assert s.check("read_all", {"paths": [["~/docs/a.txt", "/home/ana/docs/b.txt"]]}).verdict == "allow"


def test_an_untyped_argument_with_a_matcher_refuses_everything_but_strings_and_lists() -> None:
    s = _session()
    assert s.check("read_any", {"path": "~/docs/a"}).verdict == "allow"
    for value in (5, 2.5, True, {"p": "~/docs/a"}, ["~/docs/a", {"p": "/etc/shadow"}]):
        d = s.check("read_any", {"path": value})
        assert d.verdict == "deny", (value, d.explain())
        assert "can only check a string" in d.reasons[0].message


def test_matchers_of_an_array_and_of_its_items_both_apply() -> None:
    s = _session()
    assert s.check("fetch_typed", {"urls": [["https://docs.example.com/a"]]}).verdict == "allow"
    # allowed by the items' list, not by the array's ('api' matches '*.example.com', so it passes both)
    assert s.check("fetch_typed", {"urls": [["https://api.example.com/a"]]}).verdict == "allow"
    # allowed by the array's '*.example.com', not by the items' list
    assert s.check("fetch_typed", {"urls": [["https://www.example.com/a"]]}).verdict == "deny"
    assert s.check("fetch_typed", {"urls": [[["https://docs.example.com/a"]]]}).verdict == "deny"  # items say string


def test_a_refusal_names_the_argument_the_leaf_and_the_form() -> None:
    d = _session().check("fetch_all", {"urls": ["https://docs.example.com/", ["https://docs\u3002example.com/"]]})
    message = d.reasons[0].message
    assert message.startswith("argument 'urls'[1][0] ")
    assert "url_host_in" in message and "IDEOGRAPHIC FULL STOP" in message


def test_host_in_takes_bare_hosts() -> None:
    s = _session()
    assert s.check("browse", {"site": "www.example.com/page"}).verdict == "allow"
    assert s.check("browse", {"site": "www.example.com"}).verdict == "allow"
    assert s.check("browse", {"site": "www.example.com.evil.net/page"}).verdict == "deny"
    assert s.check("browse", {"site": "www.example.com@evil.net"}).verdict == "deny"


def test_idn_opt_in_from_yaml() -> None:
    s = _session()
    assert s.check("fetch_idn", {"url": "https://xn--bcher-kva.example/"}).verdict == "allow"
    assert s.check("fetch_idn", {"url": "https://b\u00fccher.example/"}).verdict == "deny"


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ('{type: string, url_host_in: ["*.*.example.com"]}', "url_host_in"),
        ('{type: string, email_domain_in: ["b\u00fccher.example"]}', "email_domain_in"),
        ('{type: string, path_under: ["/srv/../etc"]}', "path_under"),
        ('{type: string, host_in: ["example.com."]}', "host_in"),
    ],
)
def test_unusable_entries_are_policy_errors_with_the_rule_path(spec: str, where: str) -> None:
    text = f"tether: 1\nname: bad\ntools:\n  t:\n    effect: read\n    args:\n      a: {spec}\n"
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(text)
    assert info.value.rule_path == f"tools.t.args.a.{where}"


def test_idn_without_a_host_matcher_is_refused() -> None:
    text = "tether: 1\nname: bad\ntools:\n  t:\n    effect: read\n    args:\n      a: {type: string, path_under: ['/srv'], idn: true}\n"
    with pytest.raises(PolicyError, match="idn"):
        Policy.from_yaml(text)


# ---------------------------------------------------------------- conditions: the safe side of each rule

RULES = """
tether: 1
name: sides
home: /home/ana
tools:
  read_secret: {effect: read, output: trusted, output_tags: [secret]}
  read_file:
    effect: read
    output: trusted
    labels:
      - when: {arg: path, path_glob: ["~/.ssh/**", "**/*.pem"]}
        tags: [secret]
      - when: {arg: path, path_under: ["~/Downloads"]}
        integrity: untrusted
    args:
      path: {type: string, required: true}
  fetch:
    effect: read
    args:
      url: {type: string, required: true}
    deny:
      - when: {arg: url, url_host_in: ["evil.example.net"]}
        reason: known exfiltration host
      - when: {not: {arg: url, url_host_in: ["docs.example.com", "*.example.org"]}}
        reason: only the docs
  send:
    effect: write
    args:
      to: {type: array}
      body:
        type: string
        flow: {forbid: [secret], unless: {arg: to, email_domain_in: ["company.com"]}}
    ask:
      - when: {arg: to, email_domain_in: ["partner.example"]}
        reason: mail to the partner
"""


def _label_of(path: str) -> Any:
    s = _session(RULES)
    call = ToolCall("read_file", {"path": path})
    assert s.check(call).verdict == "allow"
    return s.record_result(call.id, "file contents")


@pytest.mark.parametrize(
    "path",
    [
        "~/.ssh/id_rsa",
        "~/.SSH/id_rsa",  # finding 10: a case-insensitive file system reads the same key
        "~ana/.ssh/id_rsa",  # finding 10: a shell reads /home/ana/.ssh/id_rsa
        "/home/ana/.Ssh/ID_RSA",
        "$HOME/.ssh/id_rsa",
        "/home/ana/.ssh/../.ssh/id_rsa",
        ".ssh/id_rsa",
        "file:///home/ana/.ssh/id_rsa",
        "/home/ana/%2essh/id_rsa",
        "/home/ana/.ssh/id_rsa\x00",
        "/etc/ssl/private/server.PEM",
    ],
)
def test_label_rules_see_every_spelling_of_a_secret_path(path: str) -> None:
    assert "secret" in _label_of(path).tags


@pytest.mark.parametrize("path", ["~/downloads/invoice.pdf", "/home/ana/DOWNLOADS/x", "~ana/Downloads/x"])
def test_label_rules_that_raise_integrity_see_every_spelling(path: str) -> None:
    assert _label_of(path).untrusted


def test_label_rules_leave_unrelated_paths_alone() -> None:
    lab = _label_of("/home/ana/docs/report.pdf")
    assert not lab.untrusted and "secret" not in lab.tags


@pytest.mark.parametrize(
    ("url", "verdict"),
    [
        ("https://docs.example.com/a", "allow"),
        ("https://a.example.org/x", "allow"),
        ("https://evil.example.net/", "deny"),
        ("https://EVIL.example.net./", "deny"),
        ("https://evil\u3002example\u3002net/", "deny"),
        ("https://docs.example.com@evil.example.net/", "deny"),
        # under 'not', the listed hosts must be canonical: disguised spellings are denied
        ("https://docs.example.com./a", "deny"),
        ("https://\uff44ocs.example.com/a", "deny"),
        ("https://docs.example.com\\@x/", "deny"),
        ("https://a.b.example.org/x", "deny"),
    ],
)
def test_deny_rules_and_not(url: str, verdict: str) -> None:
    assert _session(RULES).check("fetch", {"url": url}).verdict == verdict


def _send_after_secret(to: list[Any]) -> str:
    s = _session(RULES)
    call = ToolCall("read_secret", {})
    assert s.check(call).verdict == "allow"
    s.record_result(call.id, "SK-LIVE-0123456789abcdef")
    return str(s.check("send", {"to": to, "body": "SK-LIVE-0123456789abcdef"}).verdict)


@pytest.mark.parametrize(
    ("to", "verdict"),
    [
        (["bob@company.com"], "allow"),
        (["bob@company.com", "ann@company.com"], "allow"),
        (["bob@company.com", "eve@evil.example.net"], "deny"),  # unless needs every recipient
        (["bob@company.com."], "deny"),
        (["bob@\uff43ompany.com"], "deny"),
        (["bob@company.com@evil.example.net"], "deny"),
        (['"bob@company.com"@evil.example.net'], "deny"),
        (["bob%evil.example.net@company.com"], "deny"),
        (["bob@company.com\n"], "deny"),
        ([["bob@company.com"], "eve@evil.example.net"], "deny"),
        ([{"bob@company.com": "eve@evil.example.net"}], "deny"),
        ([], "deny"),
    ],
)
def test_unless_accepts_only_canonical_values(to: list[Any], verdict: str) -> None:
    assert _send_after_secret(to) == verdict


@pytest.mark.parametrize(
    "to",
    [
        ["x@partner.example"],
        ["a@company.com", "x@partner.example"],
        ["x@PARTNER.example."],
        ["x@\uff50artner.example"],
        ["x\uff20partner.example"],
    ],
)
def test_ask_rules_match_any_recipient_in_any_spelling(to: list[str]) -> None:
    assert _session(RULES).check("send", {"to": to, "body": "hi"}).verdict == "ask"


def test_ask_rules_do_not_fire_for_other_recipients() -> None:
    assert _session(RULES).check("send", {"to": ["a@company.com"], "body": "hi"}).verdict == "allow"
