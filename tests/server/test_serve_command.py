"""``tether serve`` in one command on a new store: a token printed once at first start, the API answering with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.server.guard_fixtures import free_port


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
        assert token not in (tmp_path / "new.db.tokens").read_text()
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
