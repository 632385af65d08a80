"""``tether policy init``, ``list`` and ``show``: start a policy for Python tools, and read the
policies shipped with Tether."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml
from rich.markup import escape

from tether.cli._common import console, err_console, fail
from tether.errors import PolicyError
from tether.examples import shipped_policies, shipped_policy
from tether.policy import Policy, python_starting_policy, tools_from_module, tools_from_schema


@click.command("init")
@click.option("--module", "module", default=None, help="A Python module (importable, e.g. 'myapp.tools'): one tool per public function.")
@click.option("--function", "functions", multiple=True, help="With --module: only these functions (repeatable).")
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="An OpenAPI document or JSON Schema (JSON or YAML).",
)
@click.option("--name", default=None, help="The policy's name (default: the module's or file's).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here (default: stdout).")
def init_cmd(module: str | None, functions: tuple[str, ...], schema_path: str | None, name: str | None, output: str | None) -> None:
    """Write a starting policy for Python tools that fails closed, with comments saying what to decide.

    From a module's functions (--module: the signatures give the arguments and their types,
    docstrings the descriptions) or an OpenAPI / JSON Schema file (--schema). For an MCP
    server, use 'tether mcp policy-init'.
    """
    if (module is None) == (schema_path is None):
        raise click.UsageError("give exactly one of --module or --schema")
    try:
        if module is not None:
            tools = tools_from_module(module, list(functions) or None)
            source = f"Python module {module}"
        else:
            assert schema_path is not None
            doc = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                fail(f"{schema_path}: not a JSON or YAML object")
            tools = tools_from_schema(doc, schema_path)
            source = f"{schema_path}"
        stem = module.rsplit(".", 1)[-1] if module is not None else Path(str(schema_path)).stem
        text = python_starting_policy(name or stem.replace("_", "-"), tools, source=source)
        Policy.from_yaml(text, source="<generated>")  # what we write must load
    except (PolicyError, OSError, yaml.YAMLError) as exc:
        fail(str(exc))
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        err_console.print(f"wrote a starting policy for {len(tools)} tool(s) to {output}", soft_wrap=True)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per policy.")
def list_cmd(as_json: bool) -> None:
    """List the policies shipped with Tether: 'extends: tether:NAME' reads the tether: ones;
    'tether policy show', 'eval' and 'test' take any of the names."""
    for p in shipped_policies():
        pol = Policy.from_yaml(p.text, source=p.ref)
        if as_json:
            click.echo(
                json.dumps(
                    {"name": p.ref, "policy": pol.name, "tools": len(pol.tools), "tests": len(p.tests), "description": p.description}
                )
            )
        else:
            console.print(f"{escape(p.ref):<22} {len(pol.tools):>3} tools  {escape(p.description)}", soft_wrap=True)


@click.command("show")
@click.argument("name")
def show_cmd(name: str) -> None:
    """Print the YAML of the shipped policy NAME (from 'tether policy list')."""
    found = shipped_policy(name)
    if found is None:
        names = ", ".join(p.ref for p in shipped_policies())
        fail(f"no shipped policy {name!r} (there are: {names})")
    click.echo(found.text, nl=False)
