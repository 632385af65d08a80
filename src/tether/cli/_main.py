"""Entry point: ``tether <group> <command>``. Environment variables are read here only."""

from __future__ import annotations

import click

from tether import __version__
from tether.cli._approvals import approvals
from tether.cli._audit import audit
from tether.cli._bench import bench
from tether.cli._demo import demo
from tether.cli._mcp import mcp
from tether.cli._policy import policy


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tether")
def main() -> None:
    """Tether: a deterministic safety layer for AI agents' tool calls."""


main.add_command(policy)
main.add_command(audit)
main.add_command(demo)
main.add_command(approvals)
main.add_command(mcp)
main.add_command(bench)
