"""``tether audit head`` and ``audit verify --expect``: exported heads catch what the chain alone cannot.

An attacker with write access to the database can rewrite the ``heads`` table along
with the events, and then the chains verify. Each test here makes such a consistent
forgery, shows that plain ``audit verify`` misses it, and that ``--expect`` names it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from tether.cli import main
from tether.store import chain_hash


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, list[str]]:
    """A store with two demo sessions (21 events each); returns its path and the session ids, oldest first."""
    db = str(tmp_path / "log.db")
    for _ in range(2):
        code, out = run("demo", "--db", db)
        assert code == 0, out
    ids = [r[0] for r in sqlite3.connect(db).execute("SELECT session_id FROM heads ORDER BY first_time")]
    assert len(ids) == 2
    return db, ids


def export(db: str, path: Path, *extra: str) -> list[dict[str, object]]:
    code, out = run("audit", "head", "--db", db, "--json", *extra)
    assert code == 0, out
    with path.open("a") as f:
        f.write(out)
    return [json.loads(line) for line in out.splitlines()]


def rechain(con: sqlite3.Connection, sid: str, start: int) -> None:
    """Recompute every hash from event ``start`` on, and the head, as a careful forger would."""
    (prev,) = con.execute("SELECT hash FROM events WHERE session_id = ? AND seq = ?", (sid, start - 1)).fetchone()
    rows = con.execute("SELECT seq, body FROM events WHERE session_id = ? AND seq >= ? ORDER BY seq", (sid, start)).fetchall()
    for seq, body in rows:
        digest = chain_hash(prev, seq, body)
        con.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE session_id = ? AND seq = ?", (prev, digest, sid, seq))
        prev = digest
    con.execute("UPDATE heads SET seq = ?, hash = ? WHERE session_id = ?", (rows[-1][0] if rows else start - 1, prev, sid))
    con.commit()


def test_head_lists_every_chain_end(store: tuple[str, list[str]], tmp_path: Path) -> None:
    db, ids = store
    heads = export(db, tmp_path / "heads.jsonl")
    assert [h["session_id"] for h in heads] == ids and all(h["seq"] == 21 for h in heads)
    con = sqlite3.connect(db)
    assert {(h["session_id"], h["hash"]) for h in heads} == set(con.execute("SELECT session_id, hash FROM heads"))
    code, out = run("audit", "head", "--db", db, ids[1][:8])
    assert code == 0 and out.split() == [ids[1], "21", heads[1]["hash"]]
    code, out = run("audit", "head", "--db", db, "nope")
    assert code == 2 and "no session matches 'nope'" in out


def test_untouched_log_passes_with_expect(store: tuple[str, list[str]], tmp_path: Path) -> None:
    db, _ = store
    export(db, tmp_path / "heads.jsonl")
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "heads.jsonl"))
    assert code == 0 and "2 exported head(s) still in their chains" in out
    # The plain-text form of 'audit head' is accepted too.
    code, text = run("audit", "head", "--db", db)
    (tmp_path / "heads.txt").write_text("# exported heads\n" + text)
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "heads.txt"))
    assert code == 0, out
    # Heads exported earlier stay valid after the session grows (they are still in the chain).
    run("demo", "--db", db)
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "heads.jsonl"))
    assert code == 0, out


def test_truncation_with_a_rewritten_head(store: tuple[str, list[str]], tmp_path: Path) -> None:
    db, ids = store
    export(db, tmp_path / "heads.jsonl")
    con = sqlite3.connect(db)
    con.execute("DELETE FROM events WHERE session_id = ? AND seq > 18", (ids[0],))
    (digest, body) = con.execute("SELECT hash, body FROM events WHERE session_id = ? AND seq = 18", (ids[0],)).fetchone()
    # A consistent truncation rewrites the whole head, its last event time included (verify checks it).
    last_time = json.loads(body)["time"]
    con.execute("UPDATE heads SET seq = 18, hash = ?, last_time = ? WHERE session_id = ?", (digest, last_time, ids[0]))
    con.commit()

    code, out = run("audit", "verify", "--db", db)
    assert code == 0, "the consistent truncation is invisible to the chain alone"
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "heads.jsonl"))
    assert code == 1
    assert f"session {ids[0]} event 21" in out and "ends at event 18" in out and "removed from the end" in out


def test_consistent_rewrite_of_history(store: tuple[str, list[str]], tmp_path: Path) -> None:
    db, ids = store
    export(db, tmp_path / "heads.jsonl")
    con = sqlite3.connect(db)
    # Event 11 proposed paying 990 to the attacker; make the log say 99, and re-chain everything after it.
    (body,) = con.execute("SELECT body FROM events WHERE session_id = ? AND seq = 13", (ids[1],)).fetchone()
    assert b'"amount":990' in body
    con.execute("UPDATE events SET body = ? WHERE session_id = ? AND seq = 13", (body.replace(b'"amount":990', b'"amount":99'), ids[1]))
    rechain(con, ids[1], 11)

    code, out = run("audit", "verify", "--db", db)
    assert code == 0, "a re-chained rewrite is invisible to the chain alone"
    code, out = run("audit", "show", "--db", db, ids[1][:8])
    assert code == 0 and '"amount": 99,' in out
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "heads.jsonl"))
    assert code == 1
    assert f"session {ids[1]} event 21" in out and "rewritten after the head was exported" in out


def test_deleted_session(store: tuple[str, list[str]], tmp_path: Path) -> None:
    db, ids = store
    export(db, tmp_path / "heads.jsonl")
    con = sqlite3.connect(db)
    for table in ("events", "heads", "calls", "approvals", "snapshots"):
        con.execute(f"DELETE FROM {table} WHERE session_id = ?", (ids[0],))
    con.commit()

    code, out = run("audit", "verify", "--db", db)
    assert code == 0 and "1 session(s)" in out, "a whole session removed leaves nothing for the chain to flag"
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "heads.jsonl"))
    assert code == 1 and f"session {ids[0]}" in out and "gone from the store" in out
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "heads.jsonl"), ids[0])
    assert code == 1 and "gone from the store" in out
    code, out = run("audit", "verify", "--db", db, ids[0])
    assert code == 2 and "no session matches" in out


def test_exports_appended_over_time_catch_a_rewrite_between_them(store: tuple[str, list[str]], tmp_path: Path) -> None:
    db, ids = store
    anchors = tmp_path / "heads.jsonl"
    export(db, anchors)
    con = sqlite3.connect(db)
    (body,) = con.execute("SELECT body FROM events WHERE session_id = ? AND seq = 4", (ids[0],)).fetchone()
    con.execute("UPDATE events SET body = ? WHERE session_id = ? AND seq = 4", (body.replace(b'"limit":10', b'"limit":11'), ids[0]))
    rechain(con, ids[0], 2)
    export(db, anchors)  # the second export records the forged head
    code, out = run("audit", "verify", "--db", db, "--expect", str(anchors))
    assert code == 1 and f"session {ids[0]} event 21" in out and "disagree" in out
    # Verifying only the untouched session against the same file passes.
    code, out = run("audit", "verify", "--db", db, "--expect", str(anchors), ids[1][:10])
    assert code == 0 and "2 exported head(s)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no exported heads"),
        ("# nothing\n\n", "holds no exported heads"),
        ('{"session_id": "a", "seq": 1}\n', "'hash' must be 64 lowercase hex digits"),
        ('{"session_id": "a", "seq": true, "hash": "' + "0" * 64 + '"}\n', "'seq' must be a positive integer"),
        ('{"session_id": "", "seq": 1, "hash": "' + "0" * 64 + '"}\n', "'session_id' must be a non-empty string"),
        ("[1, 2]", "item 1: expected an object"),
        ('{"session_id": ', "not valid JSON"),
        ("abc 12x " + "0" * 64, "is not a positive integer"),
        ("just-one-word", "expected 'SESSION SEQ HASH'"),
    ],
)
def test_unreadable_anchor_files_are_usage_errors(store: tuple[str, list[str]], tmp_path: Path, content: str, message: str) -> None:
    db, _ = store
    path = tmp_path / "heads"
    path.write_text(content)
    code, out = run("audit", "verify", "--db", db, "--expect", str(path))
    assert code == 2 and message in out


def test_missing_anchor_file(store: tuple[str, list[str]], tmp_path: Path) -> None:
    db, _ = store
    code, out = run("audit", "verify", "--db", db, "--expect", str(tmp_path / "none.jsonl"))
    assert code == 2 and "cannot read" in out


@pytest.mark.parametrize("as_text", [False, True], ids=["blob", "retyped-to-text"])
def test_show_flags_a_tampered_chain(store: tuple[str, list[str]], as_text: bool) -> None:
    db, ids = store
    con = sqlite3.connect(db)
    edit = "replace(body, X'3939', X'3938')"
    con.execute(f"UPDATE events SET body = {edit if as_text else f'CAST({edit} AS BLOB)'} WHERE session_id = ? AND seq = 13", (ids[0],))
    con.commit()
    code, out = run("audit", "show", "--db", db, ids[0][:8])
    assert code == 1
    assert f"TAMPERED session {ids[0]} event 13" in out and "events from 13 on" in out
    lines = [line for line in out.splitlines() if line[1:5].strip().isdigit()]
    assert len(lines) == 21
    assert all(line.startswith("!") == (int(line[1:5]) >= 13) for line in lines)
    code, out = run("audit", "show", "--db", db, "--json", ids[0][:8])
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert code == 1 and [e["seq"] for e in events if e.get("tampered")] == list(range(13, 22))
    # The other session is intact and shows without a warning.
    code, out = run("audit", "show", "--db", db, ids[1][:8])
    assert code == 0 and "TAMPERED" not in out and "!" not in out[:1]


def test_show_survives_an_unparseable_body(store: tuple[str, list[str]]) -> None:
    db, ids = store
    con = sqlite3.connect(db)
    con.execute("UPDATE events SET body = X'7B6E6F7420616E206576656E74' WHERE session_id = ? AND seq = 3", (ids[0],))
    con.commit()
    code, out = run("audit", "show", "--db", db, ids[0][:8])
    assert code == 1 and "unreadable event body" in out and "event 3" in out
