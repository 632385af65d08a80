"""Fuzzing the command line's inputs: ids, prefixes and anchor files give exit 0, 1 or 2, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.cli import main
from tether.store import SQLiteStore

if TYPE_CHECKING:
    from tests.cli.conftest import LiveStore

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Arguments as the OS hands them over: any text, including lone surrogates (undecodable bytes under surrogateescape).
args = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=40)


@pytest.fixture(scope="module")
def world(live_module: LiveStore) -> LiveStore:
    return live_module


def invoke(*argv: str) -> Result:
    return CliRunner().invoke(main, list(argv))


def clean(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output


@FUZZ
@given(
    command=st.sampled_from(
        [
            ("audit", "show"),
            ("audit", "show", "--json"),
            ("audit", "head"),
            ("audit", "head", "--json"),
            ("audit", "verify"),
            ("policy", "replay"),
            ("approvals", "deny"),
            ("session", "resume"),
        ]
    ),
    prefix=args,
)
def test_ids_and_prefixes(world: LiveStore, command: tuple[str, ...], prefix: str) -> None:
    clean(invoke(*command, "--db", world.db, prefix))
    # None of the above may have answered the pending call or changed the session (a prefix matched nothing, or
    # matched and was refused): the fuzzed ids never contain the live ids.
    if world.session.id.startswith(prefix) or world.pending_call.startswith(prefix):
        return
    assert [p.call_id for p in SQLiteStore(world.db).pending_approvals()] == [world.pending_call]


def test_empty_prefixes_name_nothing(world: LiveStore) -> None:
    for argv in (("approvals", "approve", ""), ("session", "kill", ""), ("audit", "show", "")):
        result = invoke(*argv, "--db", world.db)
        clean(result)
        assert result.exit_code == 2
    assert [p.call_id for p in SQLiteStore(world.db).pending_approvals()] == [world.pending_call]


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), args.map(lambda t: t.encode("utf-8", "surrogatepass"))), json_like=st.booleans())
def test_anchor_files(world: LiveStore, tmp_path_factory: pytest.TempPathFactory, content: bytes, json_like: bool) -> None:
    path = tmp_path_factory.mktemp("anchors") / "heads"
    path.write_bytes((b'{"session_id": ' + content + b"}") if json_like else content)
    clean(invoke("audit", "verify", "--db", world.db, "--expect", str(path)))


@FUZZ
@given(
    session_id=args,
    seq=st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats()),
    digest=st.one_of(st.text(max_size=70), st.integers()),
)
def test_anchor_heads(world: LiveStore, tmp_path_factory: pytest.TempPathFactory, session_id: str, seq: object, digest: object) -> None:
    path = tmp_path_factory.mktemp("anchors") / "heads.jsonl"
    path.write_text(json.dumps({"session_id": session_id, "seq": seq, "hash": digest}) + "\n")
    result = invoke("audit", "verify", "--db", world.db, "--expect", str(path))
    clean(result)
    assert result.exit_code in (1, 2), "a made-up head never passes"


def test_not_a_store(tmp_path: Path) -> None:
    for content in (b"", b"not sqlite at all", b"SQLite format 3\x00" + b"\x00" * 200):
        db = tmp_path / "x.db"
        db.write_bytes(content)
        for argv in (("audit", "verify"), ("audit", "head"), ("session", "list"), ("approvals", "list"), ("policy", "replay")):
            result = invoke(*argv, "--db", str(db))
            clean(result)
        shutil.rmtree(tmp_path / "x.db", ignore_errors=True)
