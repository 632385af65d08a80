"""Policies: the YAML format, its validation, and the compiled form a decision evaluates.

Users need :class:`Policy` (``Policy.from_file``/``from_yaml``), :class:`PolicySpec` (the
validated document, to build a policy in code) and :class:`PolicyWarning`. The decision
core (:mod:`tether.monitor`) evaluates the compiled model (:class:`CompiledTool`, its
:class:`CompiledArg`\\ s and :class:`CompiledFlow`\\ s, :class:`DefaultFlows`) with
:func:`validate_arg`, :func:`same_value` and :func:`canonical_value` (endorsed values).

Inside: ``_schema`` (the file's models), ``_loader``/``_compose`` (YAML, ``extends``, hash),
``_compile`` (spec to model), ``_model`` (the compiled types), ``_conditions`` and
``_matchers`` (compiled predicates), ``_validate`` (argument constraints), ``_policy``
(:class:`Policy`: loading and lookup).
"""

from tether.policy._conditions import canonical_value, same_value
from tether.policy._init_python import python_starting_policy, tools_from_module, tools_from_schema
from tether.policy._json_schema import arg_from_schema
from tether.policy._model import CompiledArg, CompiledFlow, CompiledTool, DefaultFlows
from tether.policy._policy import Policy
from tether.policy._problems import PolicyWarning
from tether.policy._schema import PolicySpec
from tether.policy._validate import validate_arg

__all__ = [
    "CompiledArg",
    "CompiledFlow",
    "CompiledTool",
    "DefaultFlows",
    "Policy",
    "PolicySpec",
    "PolicyWarning",
    "arg_from_schema",
    "canonical_value",
    "python_starting_policy",
    "same_value",
    "tools_from_module",
    "tools_from_schema",
    "validate_arg",
]
