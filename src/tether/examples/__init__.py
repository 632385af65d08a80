"""Example policies shipped with Tether (used by ``tether demo`` and the docs)."""

from importlib.resources import files


def example_policy_text(name: str) -> str:
    """The YAML of a shipped example policy, e.g. ``email_assistant``."""
    return (files(__package__) / f"{name}.yaml").read_text(encoding="utf-8")


__all__ = ["example_policy_text"]
