"""Policies: the YAML format, its validation and the compiled form the guard evaluates.

Users need :class:`Policy` (``Policy.from_file``/``from_yaml``), :class:`PolicySpec` and
:class:`PolicyWarning`; the compiled pieces (``CompiledTool`` and friends, ``validate_arg``,
``same_value``) are what the session's decision procedure evaluates.
"""

from tether.policy._compiled import CompiledArg, CompiledFlow, CompiledTool, DefaultFlows, Policy, validate_arg
from tether.policy._conditions import same_value
from tether.policy._loader import parse_policy_text, policy_hash
from tether.policy._problems import PolicyWarning
from tether.policy._schema import PolicySpec

__all__ = [
    "CompiledArg",
    "CompiledFlow",
    "CompiledTool",
    "DefaultFlows",
    "Policy",
    "PolicySpec",
    "PolicyWarning",
    "parse_policy_text",
    "policy_hash",
    "same_value",
    "validate_arg",
]
