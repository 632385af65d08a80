"""Entry point: ``tether <group> <command>``. Environment variables are read here only."""

from __future__ import annotations

from typing import Any

import click

from tether import __version__
from tether.cli._approvals import approvals
from tether.cli._audit import audit
from tether.cli._bench import bench
from tether.cli._demo import demo
from tether.cli._endorsements import endorsements
from tether.cli._mcp import mcp
from tether.cli._policy import policy
from tether.cli._replay import replay_cmd
from tether.cli._run import run_cmd
from tether.cli._serve import serve
from tether.cli._session import session
from tether.errors import TetherError

# Optional dependencies and the extra that installs them.
_EXTRAS = {
    "agentdojo": "bench",
    "ray": "bench",
    "mcp": "mcp",
    "anyio": "mcp",
    "jsonschema": "mcp",
    "httpx": "agent",
    "cedarpy": "dev",
    "fastapi": "serve",
    "uvicorn": "serve",
    "jinja2": "serve",
    "starlette": "serve",
    "matplotlib": "serve",
}


class _Main(click.Group):
    """The root group: a missing optional dependency or an unexpected Tether error is a one-line error, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImportError as exc:
            name = (getattr(exc, "name", None) or "").split(".")[0]
            extra = _EXTRAS.get(name)
            if extra is None:
                raise
            click.echo(f"error: this command needs the optional package {name!r}: pip install 'tether-guard[{extra}]'", err=True)
            raise SystemExit(2) from None
        except TetherError as exc:
            # A typed failure no command expected (the store became unreadable mid-command...): one line, exit 2.
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(2) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tether")
def main() -> None:
    """Tether: a deterministic safety layer for AI agents' tool calls."""


policy.add_command(replay_cmd)
main.add_command(policy)
main.add_command(audit)
main.add_command(demo)
main.add_command(approvals)
main.add_command(endorsements)
main.add_command(session)
main.add_command(mcp)
main.add_command(bench)
main.add_command(run_cmd)
main.add_command(serve)
