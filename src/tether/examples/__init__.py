"""Policies shipped with Tether (used by ``tether demo``, ``tether policy list/show`` and the docs),
and the table-driven tests that come with each (``tether policy test``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

_PLACES = {
    "tether": ("examples", "what ``extends: tether:NAME`` reads"),
    "agentdojo": ("adapters/agentdojo/policies", "the AgentDojo benchmark's policies (``tether bench agentdojo``)"),
}


def example_policy_text(name: str) -> str:
    """The YAML of a shipped example policy, e.g. ``email_assistant``."""
    return (files(__package__) / f"{name}.yaml").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class ShippedPolicy:
    """One policy shipped in the package, and its tests."""

    ref: str
    """How to name it: ``tether:email_assistant``, ``agentdojo:banking``."""
    text: str
    """The YAML."""
    tests: tuple[tuple[str, str], ...]
    """Its test files: (name, YAML text) each."""

    @property
    def description(self) -> str:
        """The first line of the policy's ``description``, or else of its first comment."""
        for line in self.text.splitlines():
            if line.startswith("description:"):
                first = line.removeprefix("description:").strip().strip(">|").strip()
                if first:
                    return first
                rest = [r.strip() for r in self.text.split(line, 1)[1].splitlines() if r.strip()]
                return rest[0] if rest else ""
        comment = next((line for line in self.text.splitlines() if line.startswith("#")), "")
        return comment.lstrip("# ").strip()


def _folder(place: str) -> Traversable:
    root = files("tether")
    for part in _PLACES[place][0].split("/"):
        root = root / part
    return root


def shipped_policies() -> list[ShippedPolicy]:
    """Every shipped policy, by place then name."""
    out = []
    for place in _PLACES:
        folder = _folder(place)
        for item in sorted(folder.iterdir(), key=lambda t: t.name):
            if item.is_file() and item.name.endswith(".yaml"):
                out.append(_load(place, item.name.removesuffix(".yaml")))
    return out


def shipped_policy(ref: str) -> ShippedPolicy | None:
    """The shipped policy named ``ref`` (``tether:NAME``, ``agentdojo:NAME``, or a bare NAME when
    only one place has it); None when there is none."""
    place, _, name = ref.rpartition(":")
    places = [place] if place else list(_PLACES)
    if (place and place not in _PLACES) or not name.replace("_", "").replace("-", "").isalnum():
        return None
    found = [p for p in places if (_folder(p) / f"{name}.yaml").is_file()]
    return _load(found[0], name) if len(found) == 1 else None


def _load(place: str, name: str) -> ShippedPolicy:
    folder = _folder(place)
    tests_dir = folder / "tests"
    tests = tuple(
        (f"{place}:{name}/{t.name}", t.read_text(encoding="utf-8"))
        for t in (sorted(tests_dir.iterdir(), key=lambda t: t.name) if tests_dir.is_dir() else [])
        if t.is_file() and t.name.split(".")[0] == name and t.name.endswith(".yaml")
    )
    return ShippedPolicy(f"{place}:{name}", (folder / f"{name}.yaml").read_text(encoding="utf-8"), tests)


__all__ = ["ShippedPolicy", "example_policy_text", "shipped_policies", "shipped_policy"]
