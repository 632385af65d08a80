"""Policies: the YAML format, its validation and the compiled form the guard evaluates."""

from tether.policy._compiled import Policy
from tether.policy._loader import parse_policy_text, policy_hash
from tether.policy._schema import PolicySpec

__all__ = ["Policy", "PolicySpec", "parse_policy_text", "policy_hash"]
