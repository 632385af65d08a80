"""Bypass attempts against the semantic matchers. Every row must be refused (or accepted) as stated."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.policy._matchers import Paths, email_domain_in, path_glob, path_readings, path_under, url_host_in

ROOTS = ["/srv/data"]

PATHS = [
    # (value, expected under /srv/data)
    ("/srv/data/report.txt", True),
    ("/srv/data", True),
    ("report.txt", False),  # relative: resolved against the workdir (/root), not the root
    ("/srv/data/a%2Fb%2Fc/../../../etc/passwd", False),  # decoded separators add directories for ".." to eat
    ("/srv/data/a\uff0fb\uff0fc/../../../etc/passwd", False),
    ("/srv/data/../secrets", False),
    ("/srv/data/./../../etc/passwd", False),
    ("../etc/passwd", False),
    ("/srv/data%2f..%2f..%2fetc/passwd", False),
    ("/srv/data/%2e%2e/%2e%2e/etc/passwd", False),
    ("/srv/data/%252e%252e/x", False),  # double encoding
    ("/srv/data\\..\\..\\etc\\passwd", False),  # backslashes
    ("/srv/data/．．/x", False),  # full-width dots (NFKC)
    ("/srv/data\uff0f..\uff0fx", False),  # full-width solidus
    ("/srv/data-evil/x", False),  # prefix without a separator
    ("/srv/dat", False),
    ("//srv/data/x", True),
    ("/srv//data///x", True),
    ("/srv/data/x\x00.txt", False),  # NUL byte
    ("/srv/data/x\n", False),  # control character
    ("/srv/data/\u200b../x", True),  # zero-width removed: "/srv/data/../x" -> no... see below
    ("~/x", False),
    ("", False),
]


@pytest.mark.parametrize(("value", "expected"), [p for p in PATHS if not p[0].startswith("/srv/data/\u200b")])
def test_path_under(value: str, expected: bool) -> None:
    assert path_under(value, ROOTS) is expected


def test_relative_paths_start_at_the_workdir() -> None:
    assert path_under("report.txt", ROOTS, Paths("/root", "/srv/data")) is True
    assert path_under("../report.txt", ROOTS, Paths("/root", "/srv/data")) is False


def test_relative_paths_are_labelled_like_absolute_ones() -> None:
    assert path_glob(".ssh/id_rsa", ["~/.ssh/**"], Paths("/home/u", "/home/u")) is True


def test_zero_width_in_path_is_removed_before_normalising() -> None:
    # "/srv/data/\u200b../x" is "/srv/data/../x" once the invisible character is gone.
    assert path_under("/srv/data/\u200b../x", ROOTS) is False


def test_symlink_like_segments_are_lexical() -> None:
    assert path_readings("/srv/data/link/../../etc") == ("/srv/etc",)
    assert path_under("/srv/data/sub/../../../etc", ROOTS) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("~/.ssh/id_rsa", True),
        ("/root/.ssh/id_rsa", True),
        ("/root/./.ssh//id_rsa", True),
        ("/root/x/../.ssh/id_rsa", True),
        ("%7E/.ssh/id_rsa", True),
        ("/root/.SSH/id_rsa", False),  # case matters on Linux filesystems
        ("/root/.sshx/id_rsa", False),
    ],
)
def test_path_glob(value: str, expected: bool) -> None:
    assert path_glob(value, ["~/.ssh/**"], Paths("/root", "/root")) is expected


HOSTS = ["example.com", "*.trusted.org", "business.com"]

URLS = [
    ("https://example.com/page", True),
    ("HTTPS://EXAMPLE.COM/", True),
    ("https://example.com./", True),
    ("https://api.trusted.org/x", True),
    ("https://trusted.org/x", False),  # wildcard is for subdomains only
    ("https://example.com@evil.com/", False),  # userinfo trick
    ("https://example.com:pass@evil.com/", False),
    ("https://evil.com\\@example.com/", False),  # browsers read "\" as "/"
    ("https://evil.com/example.com", False),
    ("https://example.com.evil.com/", False),
    ("https://evilexample.com/", False),
    ("https://exаmple.com/", False),  # Cyrillic "а": IDN homoglyph
    ("https://xn--exmple-4nf.com/", False),
    ("https://ｅｘａｍｐｌｅ.com/", True),  # full-width: NFKC makes it the real host
    ("https://example.com:8443/", True),
    ("https://example.com:99999/", False),  # invalid port
    ("javascript://example.com/%0aalert(1)", False),
    ("ftp://example.com/", False),
    ("//example.com/", False),
    ("https://exa\u200bmple.com/", True),  # zero-width removed
    ("https://%65xample.com/", False),  # percent-escapes in the host: clients disagree
    ("https://example.com%2F@evil.com/", False),  # the escape is part of the userinfo
    ("https://example.com%3F@evil.com/", False),
    ("https://example.com%23@evil.com/", False),
    ("https://example.com%5C@evil.com/", False),
    ("https://example.com\uff0f@evil.com/", False),
    ("https://example.com\uff1f@evil.com/", False),
    ("https://example.com\uff0fevil.com/", False),
    ("https://example.com /", False),
    ("https://busineß.com/", False),  # IDNA 2008: xn--busine-gta.com, not business.com
    ("https://example.com%2eevil.com/", False),
    ("https://[::1]/", False),
    ("not a url", False),
    ("", False),
]


@pytest.mark.parametrize(("value", "expected"), URLS)
def test_url_host_in(value: str, expected: bool) -> None:
    assert url_host_in(value, HOSTS) is expected


DOMAINS = ["company.com", "business.com"]

EMAILS = [
    ("alice@company.com", True),
    ("Alice@COMPANY.COM", True),
    ("alice@company.com.", True),
    ("alice@sub.company.com", False),
    ("alice@company.com.evil.com", False),
    ("alice@evil.com", False),
    ("alice@cоmpany.com", False),  # Cyrillic "о"
    ("alice@company.com@evil.com", False),
    ('"alice@company.com"@evil.com', False),
    ("Alice <alice@evil.com>", False),
    ("alice@evil.com,bob@company.com", False),
    ("alice@evil.com\n@company.com", False),
    ("alice%40evil.com@company.com", False),  # decodes to two @
    ("alice@company\u200b.com", True),
    ("alice@ｃｏｍｐａｎｙ.com", True),
    ("alice@company.com\x00", False),
    ("ceo@busineß.com", False),
    ("ceo@BUSINESS.com", True),
    ("alice＠company.com", False),
    ("@company.com", False),
    ("alice@", False),
]


@pytest.mark.parametrize(("value", "expected"), EMAILS)
def test_email_domain_in(value: str, expected: bool) -> None:
    assert email_domain_in(value, DOMAINS) is expected


@given(st.text(max_size=300))
def test_matchers_never_raise(value: str) -> None:
    path_under(value, ROOTS)
    path_glob(value, ["~/.ssh/**", "**/*.pem"])
    url_host_in(value, HOSTS)
    email_domain_in(value, DOMAINS)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_nothing_escapes_the_root(suffix: str) -> None:
    value = "/srv/data/" + suffix
    if path_under(value, ROOTS):
        for reading in path_readings(value):
            assert reading == "/srv/data" or reading.startswith("/srv/data/")


@given(st.text(max_size=60))
def test_accepted_urls_have_allowed_hosts(garbage: str) -> None:
    for value in (f"https://{garbage}", f"https://example.com{garbage}", f"https://{garbage}@example.com"):
        if url_host_in(value, ["example.com"]):
            from tether.policy._matchers import url_host

            assert url_host(value) == "example.com"
