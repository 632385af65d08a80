"""A throw-away PostgreSQL cluster for tests: ``initdb`` and ``pg_ctl`` in a temporary directory.

The server listens only on a unix socket in that directory (on a free port number, which
names the socket), so nothing outside the test can reach it and no system service is
needed. PostgreSQL refuses to run as root: when the tests run as root, the cluster runs
as the ``postgres`` system user (Debian's package creates it), which owns the directory.
The binaries come from Debian's ``postgresql`` package (``/usr/lib/postgresql/*/bin``);
without them the fixture fails with a message that says what to install: a PostgreSQL
test never skips.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

SUPERUSER = "tether"


def bin_dir() -> Path:
    """The directory of the newest installed PostgreSQL's binaries."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb): "
        "install Debian's 'postgresql' package (apt-get install postgresql); .ci/run does this"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One cluster in a temporary directory; :meth:`stop` removes it."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="tether-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._user = self._runtime_user()
        self._names = itertools.count(1)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-sync", "--locale=C")
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.root}'",
            "port": str(self.port),
            # Nothing here outlives the test run; fsync off spares the shared disk. Commits still
            # reach the OS before they return, so a killed server loses nothing acknowledged.
            # (Benchmarks turn it on: a server as deployed.)
            "fsync": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.start()

    @staticmethod
    def _runtime_user() -> str | None:
        """Who runs the server: ourselves, or ``postgres`` (created if missing) when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], check=True)
        return "postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash would)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database`` over the unix socket."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.root}&port={self.port}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        """Stop the server if it runs, and delete the directory."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
