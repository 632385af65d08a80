"""The example's tools (``tether.examples.weather``) with their side effects counted, for
``tether run --tools local_model_tools:TOOLS`` in the local-model test.

Each call that runs appends ``TOOL ARGUMENTS`` to the file named by ``AGENT_TEST_EFFECTS`` before
the example's function runs, so the test can tell, from outside the process and the log, what ran.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

from tether.agent import FunctionTool
from tether.examples import weather


def _counted(tool: FunctionTool) -> FunctionTool:
    def run(**args: Any) -> Any:
        path = os.environ["AGENT_TEST_EFFECTS"]
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{tool.spec.name} {json.dumps(args, sort_keys=True)}\n")
        fn: Callable[..., Any] = tool.fn
        return fn(**args)

    return dataclasses.replace(tool, fn=run)


TOOLS = [_counted(t) for t in weather.TOOLS]
