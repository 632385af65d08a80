"""``tether serve`` in one command on a new store: a token printed once at first start, the API answering with it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner
from tests.server.guard_fixtures import free_port

from tether import SQLiteStore
from tether.cli import main
from tether.server import TokenBook


def _start(db: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--db", str(db), "--port", str(port)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    lines = []
    while not lines or "Tether oversight on" not in lines[-1]:
        line = proc.stdout.readline()
        assert line, f"tether serve exited: {lines}"
        lines.append(line)
    return proc, lines


def _wait_up(url: str, token: str) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(f"{url}/api/sessions", headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_first_start_prints_a_token_once(tmp_path: Path) -> None:
    db, port = tmp_path / "new.db", free_port()
    proc, lines = _start(db, port)
    try:
        found = re.search(r"tth_[A-Za-z0-9_-]+", "".join(lines))
        assert found is not None and f"http://127.0.0.1:{port}/" in lines[-1]
        token = found.group(0)
        response = _wait_up(f"http://127.0.0.1:{port}", token)
        assert response.status_code == 200 and response.json() == []
        dump = "\n".join(sqlite3.connect(db).iterdump())
        assert token not in dump and "tokens" in dump and not (tmp_path / "new.db.tokens").exists()  # hashed, in the store
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    proc, lines = _start(db, port)
    try:
        assert "tth_" not in "".join(lines)  # shown once only
        assert _wait_up(f"http://127.0.0.1:{port}", token).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_token_file_of_an_older_tether_is_imported_once_and_said_so(tmp_path: Path) -> None:
    """A service that kept its tokens in ``<db>.tokens``: the first command on the store moves them
    into it (saying so on stderr), the old token keeps working, and the file is never read again."""
    db = tmp_path / "old.db"
    SQLiteStore(db).close()  # the store the old service served
    digest = hashlib.sha256(b"tth_old-token-value").hexdigest()
    (tmp_path / "old.db.tokens").write_text(json.dumps({"tokens": [{"name": "ops", "created": 1.0, "digest": digest}]}))
    runner = CliRunner()
    listed = runner.invoke(main, ["serve", "token", "list", "--db", str(db), "--json"])
    assert listed.exit_code == 0, listed.output
    assert "imported 1 token(s)" in listed.stderr and json.loads(listed.stdout)["name"] == "ops"
    with SQLiteStore(db) as store:
        assert TokenBook(store).check("tth_old-token-value") == "ops"
    assert runner.invoke(main, ["serve", "token", "revoke", "--db", str(db), "ops"]).exit_code == 0
    again = runner.invoke(main, ["serve", "token", "list", "--db", str(db)])
    assert "imported 1" not in again.stderr and "no tokens" in again.stdout
    assert "is not read: the store already holds tokens" in again.stderr  # until the file is deleted
    (tmp_path / "old.db.tokens").unlink()
    assert runner.invoke(main, ["serve", "token", "list", "--db", str(db)]).stderr == ""
    missing = runner.invoke(main, ["serve", "token", "list", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no event store" in missing.stderr and not (tmp_path / "none.db").exists()
