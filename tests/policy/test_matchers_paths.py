"""path_under and path_glob against tables of legitimate paths and path tricks, on both sides.

path_under as an argument constraint (the permitting side) accepts only canonical paths in
their exact case; path_glob and path_under in label, ask and deny conditions (the restricting
side) match when any reading of the path matches, case-insensitively.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.policy._matchers import PathGlob, Paths, PathUnder

ANA = Paths("/home/ana", "/home/ana")
UNDER = PathUnder(["/home/ana/docs", "~/work", "/srv/data"], ANA)

LEGITIMATE_PATHS = [
    "/home/ana/docs/report.pdf",
    "/home/ana/docs",
    "/home/ana/docs/",
    "/home/ana/docs/2024/Q1 summary (final).xlsx",
    "/home/ana/docs/r\u00e9sum\u00e9.pdf",
    "/home/ana/docs/\u0434\u043e\u043a\u0443\u043c\u0435\u043d\u0442.txt",
    "/home/ana/docs/.hidden",
    "/home/ana/docs/...",
    "/home/ana/docs/a-b_c.d~",
    "/home/ana/docs/50% off.txt",  # a '%' that starts no escape
    "/home/ana/docs/price$.txt",  # a '$' that starts no expansion
    "/home/ana/docs/*.txt",  # a glob that cannot reach '..'
    "~/work/notes.md",
    "~/work",
    "/srv/data/a/b/c.txt",
    "/srv/data/x:y",
]

# (value, what the refusal must mention)
PATH_TRICKS = [
    # '..' segments (a symlink before one sends the system elsewhere than a lexical reading), '//' prefixes
    ("/home/ana/docs/../.ssh/id_rsa", "'..'"),
    ("/home/ana/docs/..", "'..'"),
    ("/srv/data/a/../../../etc/passwd", "'..'"),
    ("~/work/../.ssh/id_rsa", "'..'"),
    ("../etc/passwd", "'..'"),
    ("//home/ana/docs/x", "'//'"),
    ("///home/ana/docs/x", "'//'"),
    # encodings: percent-escapes, backslashes, compatibility and look-alike characters
    ("/home/ana/docs/%2e%2e/.ssh/id_rsa", "percent-escape"),
    ("/home/ana/docs%2f..%2f.ssh", "percent-escape"),
    ("/home/ana/docs/%252e%252e/x", "percent-escape"),
    ("/home/ana/docs/..%2f..%2fetc", "percent-escape"),
    ("/home/ana/docs\\..\\.ssh\\id_rsa", "backslash"),
    ("/home/ana/docs/a\\b", "backslash"),
    ("/home/ana/docs/\uff0e\uff0e/x", "FULLWIDTH FULL STOP"),
    ("/home/ana/docs/a\uff0fb", "FULLWIDTH SOLIDUS"),
    ("/home/ana/docs/\u2024\u2024/x", "ONE DOT LEADER"),
    ("/home/ana/docs/x\u2215..\u2215..", "DIVISION SLASH"),
    ("/home/ana/docs/x\u2044y", "FRACTION SLASH"),
    ("/home/ana/docs/x\u2216y", "SET MINUS"),
    ("/home/ana/docs/\u3002\u3002/x", "IDEOGRAPHIC FULL STOP"),
    ("/home/ana/docs/\ufb01le.txt", "LIGATURE FI"),
    ("/home/ana/docs/\u2168.txt", "ROMAN NUMERAL NINE"),
    ("/home/ana/docs/cafe\u0301.txt", "normal form"),
    ("/home/ana/docs/\u00a0x", "NO-BREAK SPACE"),
    # invisible, control and surrounding characters
    ("/home/ana/docs/\u200b../x", "ZERO WIDTH SPACE"),
    ("/home/ana/docs/x\u00ad", "SOFT HYPHEN"),
    ("/home/ana/docs/\u202ecod.exe", "RIGHT-TO-LEFT OVERRIDE"),
    ("/home/ana/docs/x\x00.txt", "NULL"),
    ("/home/ana/docs/x\n", "LINE FEED"),
    ("/home/ana/docs/x\r", "CARRIAGE RETURN"),
    ("/home/ana/docs/\tx", "CHARACTER TABULATION"),
    ("/home/ana/docs/x\x1b[2J", "control"),
    ("/home/ana/docs/x\x85", "control"),
    (" /home/ana/docs/x", "whitespace"),
    ("/home/ana/docs/x ", "whitespace"),
    # shell expansions
    ("$HOME/docs/x", "shell expansion"),
    ("${HOME}/docs/x", "shell expansion"),
    ("/home/ana/docs/$(cat /etc/passwd)", "shell expansion"),
    ("/home/ana/docs/`id`", "shell expansion"),
    ("/home/ana/docs/$X/y", "shell expansion"),
    ("/home/ana/docs/${X:-../../..}/y", "shell expansion"),
    ("/home/ana/docs/{..,x}/y", "brace expansion"),
    ("/home/ana/docs{,/../.ssh}/id_rsa", "brace expansion"),
    ("/home/ana/docs/{1..3}", "brace expansion"),
    ("/home/ana/docs/.*/.ssh/id_rsa", "'..'"),
    ("/home/ana/docs/.?/x", "'..'"),
    ("/home/ana/docs/.[.]/x", "'..'"),
    # other users' homes and other spellings of a root
    ("~ana/.ssh/id_rsa", "another user"),
    ("~root/.ssh/id_rsa", "another user"),
    ("~ana", "another user"),
    ("~+/docs/x", "another user"),
    ("~-/x", "another user"),
    ("file:///home/ana/docs/x", "file: URL"),
    ("file:/home/ana/docs/x", "file: URL"),
    ("FILE:///home/ana/docs/x", "file: URL"),
    ("file://localhost/home/ana/docs/x", "file: URL"),
    ("smb://server/share", "URL"),
    ("C:\\Users\\ana", "backslash"),
    ("C:/Users/ana", "drive letter"),
    # canonical, outside every root (case counts: Linux file systems are case-sensitive)
    ("/HOME/ANA/DOCS/x", "not under"),
    ("/home/ana/Docs/x", "not under"),
    ("~/Work/x", "not under"),
    ("/home/ana/docs-old/x", "not under"),
    ("/home/ana/doc", "not under"),
    ("/home/ana/.ssh/id_rsa", "not under"),
    ("/etc/passwd", "not under"),
    ("", "empty"),
]


@pytest.mark.parametrize("value", LEGITIMATE_PATHS)
def test_legitimate_paths_pass(value: str) -> None:
    assert UNDER.refusal(value) is None


# Spellings every POSIX consumer reads as the same file: collapsed, not refused (issue 16).
COLLAPSED = [
    ("/home/ana/docs/./x", "/home/ana/docs/x"),
    ("/home/ana/docs/.", "/home/ana/docs"),
    ("./docs/x", "/home/ana/docs/x"),
    ("docs//x", "/home/ana/docs/x"),
    ("/home/ana//docs/x", "/home/ana/docs/x"),
    ("/home/ana/docs//", "/home/ana/docs"),
    ("~/./docs/./x", "/home/ana/docs/x"),
]


@pytest.mark.parametrize(("value", "same_as"), COLLAPSED)
def test_dot_and_empty_segments_are_collapsed(value: str, same_as: str) -> None:
    assert UNDER.accepts(value) and UNDER.accepts(same_as)
    assert SECRETS.accepts(value.replace("docs", ".ssh")) == SECRETS.accepts(same_as.replace("docs", ".ssh"))


def test_the_filesystem_root_is_a_root_and_a_value() -> None:
    root = PathUnder(["/"], Paths(home="/home/ana", workdir="/home/ana"))
    assert root.accepts("/") and root.accepts("/etc/passwd") and root.accepts("docs/x") and root.may_match("/")
    assert root.refusal("/etc/../x") is not None  # '..' stays refused under any root
    assert PathUnder(["/srv"]).refusal("/") is not None


def test_dot_alone_is_the_workdir() -> None:
    assert PathUnder(["/srv/w"], Paths(home="/root", workdir="/srv/w")).accepts(".")
    assert not PathUnder(["/srv/w/sub"], Paths(home="/root", workdir="/srv/w")).accepts(".")


@pytest.mark.parametrize(("value", "why"), PATH_TRICKS)
def test_path_tricks_are_refused(value: str, why: str) -> None:
    refusal = UNDER.refusal(value)
    assert refusal is not None, f"{value!r} was accepted"
    assert why.lower() in refusal.lower(), refusal


def test_relative_paths_start_at_the_workdir() -> None:
    assert UNDER.accepts("docs/report.pdf")  # /home/ana/docs/report.pdf
    assert not UNDER.accepts("report.pdf")  # /home/ana/report.pdf
    assert PathUnder(["/srv/data"], Paths("/root", "/srv/data")).accepts("report.txt")


def test_another_users_home_passes_only_when_listed_as_written() -> None:
    assert PathUnder(["~ana/shared"], ANA).accepts("~ana/shared/x")
    assert not PathUnder(["~ana/shared"], ANA).accepts("/home/ana/shared/x")
    assert not PathUnder(["/home/ana"], ANA).accepts("~ana/x")


@pytest.mark.parametrize("root", ["/srv/../etc", "//srv/data", "$HOME", "/srv/data%2f", "file:///srv", "/srv/\u200bdata"])
def test_unusable_roots_are_refused_when_the_policy_loads(root: str) -> None:
    with pytest.raises(ValueError):
        PathUnder([root], ANA)


# ---------------------------------------------------------------- the restricting side

SECRETS = PathGlob(["~/.ssh/**", "**/*.pem", "/etc/shadow"], ANA)

SECRET_SPELLINGS = [
    "~/.ssh/id_rsa",
    "/home/ana/.ssh/id_rsa",
    ".ssh/id_rsa",  # relative to the workdir
    "~/.SSH/id_rsa",  # a case-insensitive file system reads the same file
    "/HOME/ANA/.SSH/ID_RSA",
    "~ana/.ssh/id_rsa",  # a shell reads ~ana as /home/ana
    "~root/../ana/.ssh/id_rsa",
    "~bob/.ssh/id_rsa",  # ~bob may be this user's home under another login name
    "$HOME/.ssh/id_rsa",
    "${HOME}/.ssh/id_rsa",
    "$UNKNOWN/id_rsa",  # an unknown variable could expand to anything
    "/home/ana/docs/../.ssh/id_rsa",
    "/home/ana/./.ssh//id_rsa",
    "//home/ana/.ssh/id_rsa",
    "file:///home/ana/.ssh/id_rsa",
    "file://localhost/home/ana/.ssh/id_rsa",
    "/home/ana/%2essh/id_rsa",
    "%7E/.ssh/id_rsa",
    "/home/ana/.ssh%2fid_rsa",
    "/home/ana/%252essh/id_rsa",
    "\\home\\ana\\.ssh\\id_rsa",
    "/home/ana/\uff0essh/id_rsa",
    "/home/ana\uff0f.ssh\uff0fid_rsa",
    "/home/ana\u2215.ssh\u2215id_rsa",
    "/home/ana/.s\u200bsh/id_rsa",
    "/home/ana/.ssh/id_rsa\x00.txt",  # C's open() stops at the NUL
    " /home/ana/.ssh/id_rsa\n",
    "/home/ana/.ss\u0068/id_rsa",
    "/home/ana/.ssh%EF%BC%8Fid_rsa",  # an escaped fullwidth solidus: decode, then fold
    "/home/ana/\uff05\uff12\uff45ssh/id_rsa",  # a fullwidth escape: fold, then decode
    "/home/ana/.ssh/id_rsa%00.txt",
    "file%3A///home/ana/.ssh/id_rsa",
    "/proc/self/root/home/ana/.ssh/id_rsa",
    "/proc/self/cwd/.ssh/id_rsa",
    "/home/ana/.ssh./id_rsa",  # Windows and some SMB servers drop trailing dots and spaces
    "server.pem. ",
    "server.PEM",
    "/tmp/x/key.Pem",
    "/ETC/SHADOW",
    "/etc//shadow",
]


@pytest.mark.parametrize("value", SECRET_SPELLINGS)
def test_labels_and_asks_see_every_spelling_of_a_secret_path(value: str) -> None:
    assert SECRETS.may_match(value)


@pytest.mark.parametrize("value", ["/home/ana/docs/report.pdf", "~/sshnotes.txt", "/home/ana/.sshx/id_rsa", "pem.txt", "/etc/shadow.bak"])
def test_the_restricting_side_does_not_match_unrelated_paths(value: str) -> None:
    assert not SECRETS.may_match(value)


def test_path_under_on_the_restricting_side_ignores_case_and_spelling() -> None:
    downloads = PathUnder(["~/Downloads"], ANA)
    for value in ("~/downloads/x.pdf", "/home/ana/DOWNLOADS/x", "~ana/Downloads/x", "/home/ana/Downloads/../Downloads/x", "Downloads/x"):
        assert downloads.may_match(value), value
    assert not downloads.may_match("/home/ana/docs/x")


def test_globs_on_the_permitting_side_need_the_exact_canonical_path() -> None:
    assert SECRETS.accepts("~/.ssh/id_rsa")
    assert SECRETS.accepts("/home/ana/.ssh/config")
    for value in ("~/.SSH/id_rsa", "/home/ana/../ana/.ssh/id_rsa", "~ana/.ssh/id_rsa", "/home/ana/.ssh/id_rsa\n"):
        assert not SECRETS.accepts(value), value


def test_lexical_paths_resolves_dot_dot_by_text_when_the_policy_opts_in() -> None:
    lexical = PathUnder(["/srv/w"], Paths(home="/home/ana", workdir="/srv/w", lexical=True))
    assert lexical.accepts("/srv/w/a/../b") and lexical.accepts("sub/../x")
    assert not lexical.accepts("/srv/w/../etc/passwd") and not lexical.accepts("../x") and not lexical.accepts("/srv/w/..")
    assert not PathUnder(["/srv/w"], Paths(home="/home/ana", workdir="/srv/w")).accepts("/srv/w/a/../b")
    assert not lexical.accepts("/srv/w/a\\..\\b")  # backslashes stay refused


def test_lexical_paths_is_a_loosening_an_extension_cannot_make(tmp_path: Path) -> None:
    from tether import Policy
    from tether.errors import PolicyError

    base = tmp_path / "base.yaml"
    base.write_text("tether: 1\nname: base\ntools:\n  t: {effect: read}\n")
    child = tmp_path / "child.yaml"
    child.write_text("tether: 1\nname: child\nextends: [base.yaml]\nlexical_paths: true\n")
    with pytest.raises(PolicyError, match="lexical_paths"):
        Policy.from_file(child)
    assert "lexical_paths" not in Policy.from_file(base).spec.model_dump(exclude_none=True)
