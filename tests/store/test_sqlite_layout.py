"""The SQLite store's layout (schema 3): files of the first layout migrate forward in one
transaction, and call ids stay unique per session forever through the 64-bit call keys,
collisions included."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tether.errors import DuplicateCall, StoreError
from tether.events import CallProposed, DecisionMade, Event
from tether.store import SQLiteStore, _sqlite_schema

SCHEMA2 = Path(__file__).parent / "data" / "schema2.sqlite"
"""Written by the store of schema 2 (``events``/``calls`` keyed by session name): sessions
``session-a`` (3 checks, then a call waiting for approval) and ``session-b`` (3 checks, ended)."""


def check(sid: str, call_id: str) -> list[Event]:
    return [
        CallProposed(session_id=sid, call_id=call_id, tool="t", args={"a": 1}, call_hash="h"),
        DecisionMade(session_id=sid, call_id=call_id, verdict="allow", policy_hash="p"),
    ]


def schema2(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copy(SCHEMA2, path)
    return path


def raw(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def test_a_first_layout_file_migrates_forward_with_every_guarantee(tmp_path: Path) -> None:
    path = schema2(tmp_path)
    before = raw(path, "SELECT session_id, seq, body, prev_hash, hash FROM events ORDER BY session_id, seq")
    heads = raw(path, "SELECT * FROM heads ORDER BY session_id")
    assert raw(path, "PRAGMA user_version") == [(0,)] and len(before) == 15
    store = SQLiteStore(path)
    assert raw(path, "PRAGMA user_version") == [(_sqlite_schema.VERSION,)]
    assert raw(path, "SELECT value FROM meta WHERE key = 'schema'") == [(str(_sqlite_schema.VERSION),)]
    # The record is unchanged, byte for byte, and still verifies.
    after = [(e.session_id, e.seq, e.body, e.prev_hash, e.hash) for sid in ("session-a", "session-b") for e in store.read(sid)]
    assert after == before
    assert raw(path, "SELECT * FROM heads ORDER BY session_id") == heads
    report = store.verify()
    assert report.ok and (report.sessions, report.events) == (2, 15)
    assert [s.session_id for s in store.sessions()] == ["session-b", "session-a"]
    assert [(p.session_id, p.call_id, p.args) for p in store.pending_approvals()] == [("session-a", "wait", {"to": "x"})]
    assert store.get_policy("sha256:p") == "text"
    # Call ids used before the migration are still refused; the chains go on.
    for sid, call_id in [("session-a", "session-a-c1"), ("session-a", "wait"), ("session-b", "session-b-c0")]:
        with pytest.raises(DuplicateCall):
            store.append(sid, check(sid, call_id))
    assert store.append("session-a", check("session-a", "session-b-c0"), expect_seq=8)[-1].seq == 10
    assert store.verify().ok
    store.close()
    # Opening a current file changes nothing.
    SQLiteStore(path).close()
    assert len(raw(path, "SELECT * FROM events")) == 17


def test_a_failed_migration_leaves_the_old_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = schema2(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(_sqlite_schema, "claim_call", broken)
    with pytest.raises(StoreError, match="disk I/O error"):
        SQLiteStore(path)
    assert raw(path, "SELECT type FROM sqlite_master WHERE name IN ('events', 'calls') ORDER BY name") == [("table",), ("table",)]
    assert raw(path, "PRAGMA user_version") == [(0,)]
    assert raw(path, "SELECT name FROM sqlite_master WHERE name IN ('chain', 'session_ids', 'call_keys')") == []
    monkeypatch.undo()
    assert SQLiteStore(path).verify().ok


def test_a_file_from_a_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {_sqlite_schema.VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path)


def test_a_schema_3_file_gains_the_archived_table(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = SQLiteStore(path)
    store.append("s", check("s", "c1"))
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE archived")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert raw(path, "PRAGMA user_version") == [(_sqlite_schema.VERSION,)] and store.archived() == [] and store.verify().ok
    assert store.tokens() == []
    store.close()


def test_code_of_the_first_layout_cannot_append_to_a_migrated_file(tmp_path: Path) -> None:
    """The old names are read-only views: an old writer fails instead of skipping call_keys."""
    path = tmp_path / "x.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.OperationalError, match="view"):
        db.execute("INSERT INTO calls (session_id, call_id) VALUES ('s', 'c')")
    db.close()


@pytest.mark.parametrize("key", [7, 2**63 - 1])
def test_colliding_call_keys_keep_call_ids_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: int) -> None:
    """Every call id hashing to one key (the last one included): distinct ids are all accepted,
    each repeated id refused, in any session, by a store that never saw them."""
    monkeypatch.setattr(_sqlite_schema, "call_key", lambda sid, call_id: key)
    path = tmp_path / "x.db"
    store = SQLiteStore(path)
    for sid in ("s1", "s2"):
        for i in range(5):
            store.append(sid, check(sid, f"c{i}"))
    keys = [k for (k,) in raw(path, "SELECT key FROM call_keys ORDER BY rowid")]
    assert len(set(keys)) == 10 and key in keys
    store.close()
    fresh = SQLiteStore(path)
    for sid in ("s1", "s2"):
        for i in range(5):
            with pytest.raises(DuplicateCall):
                fresh.append(sid, check(sid, f"c{i}"))
    fresh.append("s3", check("s3", "c0"))
    assert fresh.verify().ok


def test_two_proposals_of_one_id_in_one_append_are_refused_and_write_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(DuplicateCall):
        store.append("s", [*check("s", "c"), *check("s", "c")])
    assert store.head("s") is None and raw(tmp_path / "x.db", "SELECT count(*) FROM chain") == [(0,)]
    assert store.append("s", check("s", "c"), expect_seq=0)[-1].seq == 2


def test_a_call_id_stays_used_long_after_it_left_every_memory(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = SQLiteStore(path)
    store.append("s", check("s", "first"))
    for i in range(2000):
        store.append("s", check("s", f"c{i}"))
    store.close()
    with pytest.raises(DuplicateCall):
        SQLiteStore(path).append("s", check("s", "first"))


def test_an_edit_to_the_chain_table_itself_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = SQLiteStore(path)
    for i in range(3):
        store.append("s", check("s", f"c{i}"))
    db = sqlite3.connect(path)
    db.execute("UPDATE chain SET body = CAST(replace(CAST(body AS TEXT), 'allow', 'deny!') AS BLOB) WHERE seq = 4")
    db.commit()
    db.close()
    problem = store.verify().problem
    assert problem is not None and problem.seq == 4 and "modified" in problem.message
