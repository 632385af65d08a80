"""Private means private, for members too: an object's ``_name`` members are used only by the
module that defines them. Two classes that call each other's private members (a session and
the guard that made it, a router and its gateway) are one design split in two; the fix is an
object that owns its whole job and a public method where another object needs it.

Attributes of objects from third-party packages (AgentDojo's task constants, read by the
benchmark's ground-truth checker) are not Tether's to make public; they are listed below.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "tether"

THIRD_PARTY = {
    # AgentDojo keeps a task's injected text and its inbox ids in private members; the
    # ground-truth checker (adapters/agentdojo/_ground_truth.py) must read them as they are.
    ("adapters/agentdojo/_ground_truth.py", "_get_next_id"),
    ("adapters/agentdojo/_ground_truth.py", "_EMAIL_SUBJECT"),
    ("adapters/agentdojo/_ground_truth.py", "_EMAIL_BODY"),
}


def _defined_private_names(tree: ast.Module) -> set[str]:
    """Private members a module defines: methods, class attributes and ``self._x`` assignments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name.startswith("_"):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr.startswith("_"):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id.startswith("_"):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_"):
            names.add(node.value)  # __slots__ entries
    return names


def test_no_module_uses_another_modules_private_members() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = _defined_private_names(tree)
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr in own or (rel, node.attr) in THIRD_PARTY:
                continue
            problems.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not problems, "\n".join(problems)
