"""Guard plain Python functions: check before the call, record after it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from tether._decision import ToolCall
from tether.approvals import Approver, AsyncApprover
from tether.session._agent_session import AgentSession
from tether.session._gate import Gate

P = ParamSpec("P")
R = TypeVar("R")


def _binder(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    signature = inspect.signature(fn)
    kinds = {name: p.kind for name, p in signature.parameters.items()}

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in signature.bind(*args, **kwargs).arguments.items():
            kind = kinds[name]
            if kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                out[name] = list(value)
            else:
                out[name] = value
        return out

    return bind


def guarded(
    session: AgentSession, *, name: str | None = None, approver: Approver | AsyncApprover | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: every call of the function is checked by ``session`` and its result recorded.

    A denied call raises :class:`~tether.errors.ToolDenied` without running the
    function; an ``ask`` goes to ``approver`` or raises
    :class:`~tether.errors.ApprovalRequired`. Exceptions from the function are
    recorded as error output (untrusted data the agent will see) and re-raised.
    Works for ``async def`` functions too (with sync or async approvers).
    """
    gate = Gate(session, approver)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        tool = name or fn.__name__
        bind = _binder(fn)
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                outcome = await gate.arun(ToolCall(tool, bind(args, kwargs)), lambda: afn(*args, **kwargs))
                return outcome.unwrap()

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return gate.run(ToolCall(tool, bind(args, kwargs)), lambda: fn(*args, **kwargs)).unwrap()

        return wrapper

    return decorate
