"""What file the SQLite store will use, and how it fails: a foreign SQLite database is
refused untouched, a store of an earlier Tether is accepted and stamped, a read-only file or
mount is read with ``read_only=True``, and a full disk is named as such (issue 16, section 4)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.errors import StoreError
from tether.events import CallProposed
from tether.store import SQLiteStore
from tether.store._sqlite_schema import APPLICATION_ID, VERSION


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def call(sid: str, n: int, size: int = 10) -> CallProposed:
    return CallProposed(session_id=sid, call_id=f"c{n}", tool="t", args={"x": "y" * size}, call_hash="h")


def written(path: Path, events: int = 3) -> Path:
    with SQLiteStore(path) as store:
        for n in range(events):
            store.append("s", [call("s", n)])
    return path


def test_a_new_store_carries_tethers_application_id(tmp_path: Path) -> None:
    path = written(tmp_path / "t.db")
    assert raw(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert raw(path, "PRAGMA user_version") == [(VERSION,)]


@pytest.mark.parametrize("read_only", [False, True])
def test_a_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"not a Tether event store.*invoices"):
        SQLiteStore(path, read_only=read_only)
    assert path.read_bytes() == before  # no tables added, not even the journal mode changed
    assert raw(path, "PRAGMA journal_mode") == [("delete",)]


def test_another_applications_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1234")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="application id is 0x000004d2"):
        SQLiteStore(path)


def test_a_store_written_before_the_application_id_is_accepted_and_stamped(tmp_path: Path) -> None:
    path = written(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 0")
    db.commit()
    db.close()
    with SQLiteStore(path, read_only=True) as store:  # read-only: accepted, not stamped
        assert store.verify().ok
    assert raw(path, "PRAGMA application_id") == [(0,)]
    with SQLiteStore(path) as store:
        assert store.verify().events == 3
    assert raw(path, "PRAGMA application_id") == [(APPLICATION_ID,)]


def test_a_read_only_store_reads_and_refuses_every_write(tmp_path: Path) -> None:
    path = written(tmp_path / "t.db")
    with SQLiteStore(path, read_only=True) as store:
        assert store.verify().ok and [s.events for s in store.sessions()] == [3]
        with pytest.raises(StoreError, match="readonly"):
            store.append("s", [call("s", 9)])
    assert raw(path, "SELECT count(*) FROM chain") == [(3,)]


def test_read_only_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no event store"):
        SQLiteStore(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "empty.db").touch()
    with pytest.raises(StoreError, match="empty database"):
        SQLiteStore(tmp_path / "empty.db", read_only=True)


def test_a_read_only_file_in_a_read_only_directory_is_readable(tmp_path: Path) -> None:
    """chmod; effective when the tests do not run as root (root ignores file modes: the mount test covers it)."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    path = written(folder / "t.db")
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        with SQLiteStore(path, read_only=True) as store:
            assert store.verify().events == 3
    finally:
        folder.chmod(0o755)


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for the test (needs root: CI's container runs the tests as root)."""
    if not _can_mount():
        pytest.skip("needs root to mount a small tmpfs")
    where = tmp_path / "mnt"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_copy_on_a_read_only_mount_is_verified(tmp_path: Path, small_mount: Path) -> None:
    source = written(tmp_path / "t.db")
    shutil.copy(source, small_mount / "t.db")
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    with SQLiteStore(small_mount / "t.db", read_only=True) as store:
        assert store.verify().events == 3 and store.head("s") is not None
    with pytest.raises(StoreError, match="read-only"):
        SQLiteStore(small_mount / "t.db")


def test_a_full_disk_is_named_and_the_log_stays_whole(small_mount: Path) -> None:
    store = SQLiteStore(small_mount / "t.db")
    n = 0
    with pytest.raises(StoreError) as caught:
        for n in range(10_000):
            store.append("s", [call("s", n, size=4000)])
    message = str(caught.value)
    assert "the disk is full" in message and "resume" in message and "no transaction is active" not in message
    assert store.verify().ok and store.verify().events == n  # every append before the failure is whole
    store.close()


def test_a_full_database_from_max_page_count_is_named(tmp_path: Path) -> None:
    """SQLITE_FULL without a mount: the database may not grow past its page limit."""
    store = SQLiteStore(tmp_path / "t.db")
    store._db.execute("PRAGMA max_page_count = 40")  # per connection: only the store's own can be limited
    with pytest.raises(StoreError, match="the disk is full") as caught:
        for n in range(10_000):
            store.append("s", [call("s", n, size=4000)])
    assert "no transaction is active" not in str(caught.value)
    assert store.verify().ok
    store.close()
