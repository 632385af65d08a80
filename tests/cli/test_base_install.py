"""The README's first command installs only the base package: the CLI and demo must work without extras."""

import subprocess
import sys
from pathlib import Path

BLOCK = r"""
import sys
OPTIONAL = ("agentdojo", "ray", "mcp", "anyio", "cedarpy", "httpx", "starlette", "uvicorn", "jsonschema", "fastapi", "jinja2", "psycopg")

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from tether.cli import main
sys.argv = ["tether", *sys.argv[1:]]
main()
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK, *args], capture_output=True, text=True, timeout=120)


def test_demo_without_extras(tmp_path: Path) -> None:
    result = run("demo", "--db", str(tmp_path / "d.db"))
    assert result.returncode == 0, result.stderr
    assert "Injected actions executed: 0 of 3" in result.stdout


def test_help_lists_every_group_without_extras() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for group in ("policy", "audit", "demo", "bench", "mcp", "approvals"):
        assert group in result.stdout


def test_extra_commands_say_what_to_install(tmp_path: Path) -> None:
    result = run("bench", "agentdojo", "--suite", "banking")
    assert result.returncode == 2 and "pip install 'tether-guard[bench]'" in result.stderr, result.stderr
    policy = Path(__file__).parents[1] / "fixtures" / "bank.yaml"
    result = run("mcp", "--policy", str(policy), "--db", str(tmp_path / "m.db"), "--", "server")
    assert result.returncode == 2 and "pip install 'tether-guard[mcp]'" in result.stderr, result.stderr


def test_a_postgres_url_without_psycopg_is_a_clear_error(tmp_path: Path) -> None:
    result = run("audit", "verify", "--db", "postgresql://tether@/tether?host=/nowhere")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "psycopg" in result.stderr and "tether-guard[postgres]" in result.stderr
    assert not (Path.cwd() / "postgresql:").exists()
