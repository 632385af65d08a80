"""url_host_in, host_in and email_domain_in against tables of legitimate values and bypass attempts.

Each refused row is a value some consumer (a browser or other WHATWG parser, urllib, httpx,
a resolver, a mail relay) could read as a host or domain other than the one a reader sees,
or a value that only matches after normalisation. Rows that must pass are ordinary values
written the way people and programs write them.
"""

from __future__ import annotations

import pytest

from tether.policy._matchers import EmailDomainIn, HostIn, UrlHostIn

HOSTS = ["example.com", "docs.example.org", "*.trusted.org", "**.deep.net", "192.0.2.10", "[2001:db8::1]"]
URLS = UrlHostIn(HOSTS)

LEGITIMATE_URLS = [
    "https://example.com",
    "https://example.com/",
    "http://example.com/index.html",
    "https://docs.example.org/a/b?q=1#x",
    "HTTPS://EXAMPLE.COM/",
    "https://Example.Com/Path/With/Case",
    "https://example.com:8443/api/v1/items?id=3&sort=desc",
    "https://example.com:443/",
    "https://example.com/search?q=a%20b&lang=en",
    "https://example.com/users/@ana",  # '@' after the host is part of the path
    "https://example.com/?next=https://other.example/",
    "https://example.com/#section-2",
    "https://example.com?q=1",
    "https://example.com#top",
    "https://api.trusted.org/v2",
    "https://a.b.deep.net/x",
    "https://x.deep.net",
    "https://192.0.2.10/status",
    "https://[2001:db8::1]:8080/",
    "https://example.com/wiki/K\u00f6ln",  # non-ASCII after the host does not move the host
    "https://example.com/a;b,c=d/e!f~g*h'i(j)k",
    "https://example.com/%E2%82%AC",
]

# (value, what the refusal must mention)
BYPASS_URLS = [
    # normalisation needed to match: compatibility characters, other dots, invisible characters
    ("https://\uff45xample.com/", "FULLWIDTH"),
    ("https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/", "FULLWIDTH"),
    ("https://example\u3002com/", "IDEOGRAPHIC FULL STOP"),
    ("https://example\uff0ecom/", "FULLWIDTH FULL STOP"),
    ("https://example\uff61com/", "HALFWIDTH IDEOGRAPHIC FULL STOP"),
    ("https://example\ufe52com/", "SMALL FULL STOP"),
    ("https://exa\u200bmple.com/", "ZERO WIDTH SPACE"),
    ("https://exa\u200cmple.com/", "ZERO WIDTH NON-JOINER"),
    ("https://exa\u200dmple.com/", "ZERO WIDTH JOINER"),
    ("https://exa\u2060mple.com/", "WORD JOINER"),
    ("https://exa\u00admple.com/", "SOFT HYPHEN"),
    ("https://\ufeffexample.com/", "ZERO WIDTH NO-BREAK SPACE"),
    ("https://example.com\u202e/", "RIGHT-TO-LEFT OVERRIDE"),
    ("https://\u2170.example.com/", "SMALL ROMAN NUMERAL ONE"),
    ("https://docs.example.org\u2169/", "ROMAN NUMERAL TEN"),
    ("https://\u2147xample.com/", "DOUBLE-STRUCK"),
    ("https://\U0001d41example.com/", "MATHEMATICAL BOLD"),
    ("https://e\u0301xample.com/", "COMBINING ACUTE"),
    ("https://ex\u0430mple.com/", "CYRILLIC SMALL LETTER A"),
    ("https://\u0435xample.com/", "CYRILLIC SMALL LETTER IE"),
    ("https://examp\u04cfe.com/", "CYRILLIC SMALL LETTER PALOCHKA"),
    ("https://busine\u00df.com/", "SHARP S"),
    ("https://\u212aelvin.example.com/", "KELVIN SIGN"),
    ("https://example.co\u1d0d/", "LETTER SMALL CAPITAL M"),
    ("https://example.com./", "ends with a dot"),
    ("https://example.com../", "ends with a dot"),
    ("https://.example.com/", "empty label"),
    ("https://example..com/", "empty label"),
    # whitespace and control characters anywhere
    (" https://example.com/", "whitespace"),
    ("https://example.com/ ", "whitespace"),
    ("https://example.com/\n", "LINE FEED"),
    ("https://example.com\r\n/", "CARRIAGE RETURN"),
    ("https://exa\tmple.com/", "CHARACTER TABULATION"),
    ("https://example.com/\x00", "NULL"),
    ("https://example.com/\x7f", "DELETE"),
    ("https://example.com/\x85", "control"),
    ("https://example.com\u00a0/", "whitespace"),
    ("https://example.com/\u2028", "whitespace"),
    ("https://example.com\u3000/", "whitespace"),
    # percent-encoding in the host, malformed escapes
    ("https://%65xample.com/", "'%'"),
    ("https://example%2ecom/", "'%'"),
    ("https://example.com%2F@evil.com/", "userinfo"),
    ("https://evil.com%2F.example.com/", "'%'"),
    ("https://example.com%00.evil.com/", "'%'"),
    ("https://example.com/%zz", "percent-escape"),
    ("https://example.com/%4", "percent-escape"),
    # userinfo and '@' tricks
    ("https://example.com@evil.com/", "userinfo"),
    ("https://user:pass@example.com/", "userinfo"),
    ("https://@example.com/", "userinfo"),
    ("https://example.com:443@evil.com/", "userinfo"),
    ("https://example.com@evil.com@example.com/", "userinfo"),
    ("https://evil.com@example.com/", "userinfo"),
    ("https://example.com\uff20evil.com/", "FULLWIDTH COMMERCIAL AT"),
    ("https://example.com\ufe6bevil.com/", "SMALL COMMERCIAL AT"),
    # backslashes: WHATWG reads '\' as '/', urllib and httpx as data
    ("https://example.com\\@evil.com/", "backslash"),
    ("https://evil.com\\.example.com/", "backslash"),
    ("https:\\\\example.com/", "backslash"),
    ("https://example.com/\\evil", "backslash"),
    # where the host starts and ends
    ("https:/example.com/", "two slashes"),
    ("https:///example.com/", "two slashes"),
    ("https:example.com/", "two slashes"),
    ("//example.com/", "http(s)"),
    ("example.com/", "http(s)"),
    ("https://example.com\uff0f@evil.com/", "userinfo"),  # NFKC would make the '@' part of the path
    ("https://example.com\uff1f@evil.com/", "userinfo"),
    ("https://example.com\uff03@evil.com/", "userinfo"),
    ("https://evil.com\uff0f.example.com/", "FULLWIDTH SOLIDUS"),
    ("https://evil.com\uff1f.example.com/", "FULLWIDTH QUESTION MARK"),
    ("https://example.com\u2215evil.com/", "DIVISION SLASH"),
    # ports
    ("https://example.com:/", "port"),
    ("https://example.com:0/", "port"),
    ("https://example.com:08443/", "port"),
    ("https://example.com:65536/", "port"),
    ("https://example.com:99999/", "port"),
    ("https://example.com:80:80/", "port"),
    ("https://example.com:http/", "port"),
    ("https://example.com:+80/", "port"),
    # numeric hosts other than plain dotted decimal; IPv6 oddities
    ("https://3221226058/", "numeric"),  # 192.0.2.10 as one decimal number
    ("https://0xc0.0.2.10/", "numeric"),
    ("https://0300.0.2.10/", "numeric"),  # octal
    ("https://192.0.522/", "numeric"),
    ("https://192.0.2.010/", "numeric"),
    ("https://192.0.2.10./", "ends with a dot"),
    ("https://0x7f.1/", "numeric"),
    ("https://127.1/", "numeric"),
    ("https://example.0x1/", "numeric"),
    ("https://example.123/", "numeric"),
    ("https://[2001:db8::1%25eth0]/", "zone"),
    ("https://[2001:DB8:0:0:0:0:0:1]/", "canonical form"),
    ("https://[::ffff:192.0.2.10]/", "canonical form"),
    ("https://[2001:db8::1/", "unclosed"),
    ("https://[example.com]/", "IPv6"),
    # label syntax: consumers disagree on what else a label may hold
    ("https://exa_mple.com/", "'_'"),
    ("https://-example.com/", "hyphen"),
    ("https://example-.com/", "hyphen"),
    ("https://ex--ample.com/", "third and fourth"),
    ("https://" + "a" * 64 + ".example.com/", "63"),
    ("https://example.com;evil.com/", "';'"),
    ("https://example.com,evil.com/", "','"),
    ("https://example.com!evil.com/", "'!'"),
    ("https://exam*ple.com/", "'*'"),
    ("https://example.com$/", "'$'"),
    # internationalised names without the opt-in
    ("https://xn--bcher-kva.example.com/", "idn: true"),
    ("https://xn--exmple-cua.com/", "idn: true"),
    ("https://b\u00fccher.example.com/", "not ASCII"),
    # not http(s)
    ("ftp://example.com/", "http(s)"),
    ("javascript://example.com/%0aalert(1)", "http(s)"),
    ("file://example.com/etc/passwd", "http(s)"),
    ("data:text/html,https://example.com", "http(s)"),
    ("ws://example.com/", "http(s)"),
    ("httpx://example.com/", "http(s)"),
    ("", "empty"),
    # canonical, but not listed (or a wildcard that does not reach)
    ("https://evil.com/", "not listed"),
    ("https://example.com.evil.com/", "not listed"),
    ("https://evilexample.com/", "not listed"),
    ("https://evil.com/https://example.com/", "not listed"),
    ("https://evil.com#@example.com/", "not listed"),
    ("https://evil.com?@example.com", "not listed"),
    ("https://sub.example.com/", "not listed"),
    ("https://trusted.org/", "not listed"),  # a wildcard does not match its own base
    ("https://a.b.trusted.org/", "not listed"),  # '*.' is exactly one label
    ("https://deep.net/", "not listed"),
    ("https://192.0.2.11/", "not listed"),
    ("https://[2001:db8::2]/", "not listed"),
]


@pytest.mark.parametrize("value", LEGITIMATE_URLS)
def test_legitimate_urls_pass(value: str) -> None:
    assert URLS.refusal(value) is None


@pytest.mark.parametrize(("value", "why"), BYPASS_URLS)
def test_bypass_urls_are_refused_with_a_reason(value: str, why: str) -> None:
    refusal = URLS.refusal(value)
    assert refusal is not None, f"{value!r} was accepted"
    assert why.lower() in refusal.lower(), refusal


def test_idn_opt_in_accepts_round_tripping_a_labels_only() -> None:
    matcher = UrlHostIn(["b\u00fccher.example", "*.example.org"], idn=True)
    assert matcher.accepts("https://xn--bcher-kva.example/")
    assert matcher.accepts("https://XN--BCHER-KVA.example/")  # DNS case does not matter
    assert matcher.accepts("https://xn--mnchen-3ya.example.org/")  # one label under a wildcard
    refused = {
        "https://b\u00fccher.example/": "not ASCII",  # the U-label itself: consumers map it differently
        "https://B\u00fccher.example/": "not ASCII",
        "https://xn--bcher-kva.example./": "dot",
        "https://xn--abc.example.org/": "A-label",  # does not decode
        "https://xn--bcher-kv0.example.org/": "A-label",
        "https://xn--ls8h.example.org/": "A-label",  # an emoji: not a valid IDNA 2008 label
        "https://xn--.example.org/": "hyphen",
        "https://xn--bcher-kva.evil.com/": "not listed",
    }
    for value, why in refused.items():
        refusal = matcher.refusal(value)
        assert refusal is not None and why.lower() in refusal.lower(), (value, refusal)


def test_ipv6_entries_may_omit_the_brackets() -> None:
    assert UrlHostIn(["2001:db8::1"]).accepts("https://[2001:db8::1]/")
    assert UrlHostIn(["2001:DB8:0::1"]).accepts("https://[2001:db8::1]:8443/x")


def test_idn_entries_need_the_opt_in() -> None:
    with pytest.raises(ValueError, match="not a canonical host"):
        UrlHostIn(["b\u00fccher.example"])
    with pytest.raises(ValueError, match="idn: true"):
        UrlHostIn(["xn--bcher-kva.example"])


@pytest.mark.parametrize(
    "entry", ["*.*.example.com", "ex*.com", "*example.com", "example.com.", "exa mple.com", "*.192.0.2.1", "", "https://example.com"]
)
def test_unusable_host_entries_are_refused_when_the_policy_loads(entry: str) -> None:
    with pytest.raises(ValueError):
        UrlHostIn([entry])


# ---------------------------------------------------------------- bare hosts

BARE = HostIn(["www.example.com", "*.example.org"])

LEGITIMATE_BARE = [
    "www.example.com",
    "www.example.com/page",
    "www.example.com/a/b?q=1#x",
    "WWW.EXAMPLE.COM/Page",
    "www.example.com:8080/x",
    "docs.example.org",
    "https://www.example.com/page",
    "http://docs.example.org/",
]

BYPASS_BARE = [
    ("www.example.com.evil.com/", "not listed"),
    ("evil.com/www.example.com", "not listed"),
    ("evil.com#www.example.com", "not listed"),
    ("evil.com?www.example.com", "not listed"),
    ("www.example.com@evil.com", "userinfo"),
    ("www.example.com:80@evil.com/", "userinfo"),
    ("www.example.com\\@evil.com", "backslash"),
    ("www.example.com%2F@evil.com", "userinfo"),
    ("www.example.com%2eevil.com", "'%'"),
    ("//www.example.com/", "no host"),
    ("/www.example.com", "no host"),
    ("www.example.com./", "dot"),
    ("ww\u200bw.example.com", "ZERO WIDTH"),
    ("www.ex\u0430mple.com", "CYRILLIC"),
    ("www\u3002example.com", "IDEOGRAPHIC"),
    (" www.example.com", "whitespace"),
    ("www.example.com\n", "LINE FEED"),
    ("www.example.com:", "port"),
    ("www.example.com:x/", "port"),
    ("javascript:alert(1)", "port"),
    ("mailto:a@www.example.com", "userinfo"),
    ("ftp://www.example.com/", "http(s)"),
    ("https:www.example.com", "port"),
    ("a.b.example.org", "not listed"),
    ("example.org", "not listed"),
    ("", "empty"),
]


@pytest.mark.parametrize("value", LEGITIMATE_BARE)
def test_legitimate_bare_hosts_pass(value: str) -> None:
    assert BARE.refusal(value) is None


@pytest.mark.parametrize(("value", "why"), BYPASS_BARE)
def test_bypass_bare_hosts_are_refused(value: str, why: str) -> None:
    refusal = BARE.refusal(value)
    assert refusal is not None, f"{value!r} was accepted"
    assert why.lower() in refusal.lower(), refusal


# ---------------------------------------------------------------- email

EMAILS = EmailDomainIn(["example.co.uk", "company.com", "*.corp.example"])

LEGITIMATE_EMAILS = [
    "alice@company.com",
    "Alice.Smith@company.com",
    "user.name+tag@example.co.uk",
    "ALICE@COMPANY.COM",
    "a@company.com",
    "o'brien@company.com",
    "first_last-1@company.com",
    "x=y@company.com",
    "ops@eu.corp.example",
    "123@company.com",
    "a.b.c.d@company.com",
    "~tilde@company.com",
]

BYPASS_EMAILS = [
    # more or fewer than one '@': routes, lists, quoted '@'
    ("alice@evil.com@company.com", "2 '@'"),
    ("alice@company.com@evil.com", "2 '@'"),
    ('"alice@company.com"@evil.com', "2 '@'"),
    ("@evil.com:alice@company.com", "2 '@'"),
    ("@relay.evil.com,@company.com:alice@company.com", "'@'"),
    ("alice\\@evil.com@company.com", "'@'"),
    ("alice@company.com,bob@evil.com", "'@'"),
    ("alice@company.com?cc=bob@evil.com", "'@'"),
    ("alice.company.com", "no '@'"),
    ("alice\uff20company.com", "FULLWIDTH COMMERCIAL AT"),
    ("alice\ufe6bcompany.com", "SMALL COMMERCIAL AT"),
    # local parts that are not a plain dot-atom
    ('"alice"@company.com', "quoted"),
    ('"a b"@company.com', "space"),
    ("alice(comment)@company.com", "comment"),
    ("alice@company.com(comment)", "'('"),
    ("alice%evil.com@company.com", "'%'"),
    ("evil.com!alice@company.com", "'!'"),
    ("<alice@company.com>", "angle"),
    ("Alice <alice@company.com>", "space"),
    ("alice<alice@company.com", "angle"),
    (".alice@company.com", "dot"),
    ("alice.@company.com", "dot"),
    ("al..ice@company.com", "dot"),
    ("al,ice@company.com", "','"),
    ("al;ice@company.com", "';'"),
    ("al:ice@company.com", "':'"),
    ("mailto:alice@company.com", "':'"),
    ("al[ice@company.com", "'['"),
    ("@company.com", "empty"),
    ("a" * 65 + "@company.com", "64"),
    ("\u0430lice@company.com", "CYRILLIC"),
    ("alic\u00e9@company.com", "not ASCII"),
    ("\uff41lice@company.com", "FULLWIDTH"),
    # domains that need normalisation or that parsers disagree on
    ("alice@company.com.", "ends with a dot"),
    ("alice@company..com", "empty label"),
    ("alice@.company.com", "empty label"),
    ("alice@\uff43ompany.com", "FULLWIDTH"),
    ("alice@company\u3002com", "IDEOGRAPHIC FULL STOP"),
    ("alice@comp\u200bany.com", "ZERO WIDTH SPACE"),
    ("alice@comp\u00adany.com", "SOFT HYPHEN"),
    ("alice@c\u043empany.com", "CYRILLIC"),
    ("alice@company.co\u217f", "ROMAN NUMERAL"),
    ("alice@company%2ecom", "'%'"),
    ("alice@company.com%0a", "'%'"),
    ("alice@[192.0.2.1]", "address literal"),
    ("alice@[IPv6:2001:db8::1]", "address literal"),
    ("alice@192.0.2.1", "IP address"),
    ("alice@xn--cmpany-8xa.com", "idn: true"),
    ("alice@company.com;", "';'"),
    ("alice@company.com>", "'>'"),
    ("alice@company.com/", "'/'"),
    ("alice@-company.com", "hyphen"),
    ("alice@comp_any.com", "'_'"),
    ("alice@", "no domain"),
    # whitespace and controls anywhere
    (" alice@company.com", "space"),
    ("alice@company.com ", "space"),
    ("alice@company.com\n", "LINE FEED"),
    ("alice@company.com\r\nBcc: eve@evil.com", "CARRIAGE RETURN"),
    ("alice@company.com\x00", "NULL"),
    ("alice\t@company.com", "CHARACTER TABULATION"),
    ("alice@company.com\u2028", "LINE SEPARATOR"),
    ("", "empty"),
    # canonical, not listed
    ("alice@evil.com", "not listed"),
    ("alice@company.com.evil.com", "not listed"),
    ("alice@sub.company.com", "not listed"),
    ("alice@evilcompany.com", "not listed"),
    ("alice@corp.example", "not listed"),
    ("alice@a.b.corp.example", "not listed"),
]


@pytest.mark.parametrize("value", LEGITIMATE_EMAILS)
def test_legitimate_addresses_pass(value: str) -> None:
    assert EMAILS.refusal(value) is None


@pytest.mark.parametrize(("value", "why"), BYPASS_EMAILS)
def test_bypass_addresses_are_refused(value: str, why: str) -> None:
    refusal = EMAILS.refusal(value)
    assert refusal is not None, f"{value!r} was accepted"
    assert why.lower() in refusal.lower(), refusal


def test_idn_domains_need_the_opt_in_and_the_a_label_form() -> None:
    matcher = EmailDomainIn(["m\u00fcller.example"], idn=True)
    assert matcher.accepts("hans@xn--mller-kva.example")
    assert not matcher.accepts("hans@m\u00fcller.example")
    assert not EmailDomainIn(["example.com"]).accepts("hans@xn--mller-kva.example")


# ---------------------------------------------------------------- the restricting side


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.com/",
        "HTTPS://EVIL.COM",
        "https://evil.com./",
        "https://\uff45vil.com/",
        "https://evil\u3002com/",
        "https://ev\u200bil.com/",
        "https://ev%69l.com/",
        "https://example.com@evil.com/",
        "https://example.com\\@evil.com/",
        "https:/evil.com/",
        "https:\\\\evil.com",
        "//evil.com/x",
        "evil.com/x",
        " https://evil.com",
        "https://ev\til.com/",
        "\x00ttps://evil.com/",  # WHATWG strips C0 controls at both ends
        "https://a@evil.com\x00",
        "https://evil.com\x00.example.com/",  # C resolvers stop at a NUL
        "://evil.com",
        "https://example.com//evil.com",  # a scheme-relative redirect target
    ],
)
def test_deny_rules_see_through_disguised_hosts(value: str) -> None:
    assert UrlHostIn(["evil.com"]).may_match(value)
    assert HostIn(["evil.com"]).may_match(value)


@pytest.mark.parametrize(
    "value", ["http://0x-1.0x7f.0.1/", "http://-1.2.3.4/", "http://1_0.0.0.1/", "http://+1.2.3.4/", "http:// 1.2.3.4/", "http://0x.0x/"]
)
def test_numeric_look_alikes_never_raise(value: str) -> None:
    assert not UrlHostIn(["127.0.0.1"]).may_match(value)
    assert UrlHostIn(["127.0.0.1"]).refusal(value) is not None


@pytest.mark.parametrize("value", ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/", "http://127.0.0.1./"])
def test_deny_rules_see_numeric_ipv4_forms(value: str) -> None:
    assert UrlHostIn(["127.0.0.1"]).may_match(value)


@pytest.mark.parametrize(
    "value",
    [
        "bob@evil.com",
        "bob@EVIL.COM",
        "bob@evil.com.",
        "bob@\uff45vil.com",
        "bob\uff20evil.com",
        "Bob <bob@evil.com>",
        "bob@company.com@evil.com",
        "bob@evil.com@company.com",
        "bob%evil.com@company.com",
        "evil.com!bob@company.com",
        "bob@ev\u200bil.com",
        "bob%40evil.com",
        "bob@evil.c om",  # header parsers drop the space
        "bob@>evil.com",  # and skip stray punctuation
        "bob@,evil.com",
        "Bob <bob@evil\u3000.com>",
        "bob@evil.com\x00@company.com",
        '"bob@company.com" <x@e\u00a0vil.com>',
    ],
)
def test_deny_rules_see_through_disguised_domains(value: str) -> None:
    assert EmailDomainIn(["evil.com"]).may_match(value)


@pytest.mark.parametrize("value", ["https://example.com/", "https://docs.example.org/x", "https://notevil.com/", "alice@company.com"])
def test_the_restricting_side_does_not_match_unrelated_hosts(value: str) -> None:
    assert not UrlHostIn(["evil.com"]).may_match(value)
    assert not EmailDomainIn(["evil.com"]).may_match(value)


def test_a_plain_user_name_before_an_allowed_host_is_accepted() -> None:
    """Issue 16: ``https://user@allowed/`` names the allowed host to every parser; a userinfo that
    reads like a host, holds a password or a second '@' is still refused."""
    from tether.policy._matchers import UrlHostIn

    urls = UrlHostIn(["allowed.com"])
    assert urls.accepts("https://user@allowed.com/") and urls.accepts("https://git@allowed.com/repo.git")
    for value in ("https://allowed.com@evil.com/", "https://user@evil.com/", "https://a@b@allowed.com/", "https://u:p@allowed.com/",
                  "https://allowed.com:443@evil.com/", "https://a%40b@allowed.com/"):  # fmt: skip
        assert not urls.accepts(value), value
    assert urls.may_match("https://user@allowed.com/")


def test_an_a_label_under_a_double_wildcard_is_accepted_without_idn() -> None:
    """``xn--bcher-kva.corp.com`` under ``**.corp.com``: the policy accepts every name under
    corp.com, and a valid A-label reads the same to every consumer. A listed name and the label
    of a ``*.`` entry still need ``idn: true``, and an invalid A-label is refused."""
    from tether.policy._matchers import HostIn, UrlHostIn

    assert UrlHostIn(["**.corp.com"]).accepts("https://xn--bcher-kva.corp.com/x")
    assert HostIn(["**.corp.com"]).accepts("xn--bcher-kva.corp.com")
    assert HostIn(["**.corp.com"]).may_match("bücher.corp.com")  # its U-label form, on the restricting side
    assert not HostIn(["**.corp.com"]).accepts("xn--zz.corp.com")
    assert not HostIn(["corp.com", "*.corp.com"]).accepts("xn--bcher-kva.com")
    assert not HostIn(["*.corp.com"]).accepts("xn--bcher-kva.corp.com")
    assert HostIn(["*.corp.com"], idn=True).accepts("xn--bcher-kva.corp.com")
    assert not HostIn(["**.corp.com"]).accepts("xn--crp-zla.com")  # a look-alike of the listed domain itself
