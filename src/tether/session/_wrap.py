"""Guard plain Python functions: check before the call, record after it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from tether._decision import Decision, ToolCall
from tether.errors import ApprovalRequired, ToolDenied
from tether.session._guard import Session

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a human is asked to approve."""

    session_id: str
    call: ToolCall
    decision: Decision


class Approver(Protocol):
    """Decides an ``ask``: return True to approve. ``name`` is logged as the approver."""

    @property
    def name(self) -> str:
        """Who answers (logged with the answer)."""
        ...

    def __call__(self, request: ApprovalRequest) -> bool:
        """Approve (True) or refuse (False)."""
        ...


def _bind(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    signature = inspect.signature(fn)
    bound = signature.bind(*args, **kwargs)
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[name] = list(value)
        else:
            out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of putting one call through the guard (and its approver)."""

    decision: Decision
    """The guard's decision."""
    approved: bool | None
    """The approver's answer to an ``ask`` as the session recorded it (None: nobody was asked)."""

    @property
    def may_run(self) -> bool:
        """Whether the call may run now: allowed, or asked and approved."""
        return self.decision.verdict == "allow" or self.approved is True


def admit(session: Session, call: ToolCall, approver: Approver | None) -> Admission:
    """Check ``call``; an ``ask`` goes to ``approver`` (none: not approved) and its answer is logged."""
    decision = session.check(call)
    approved: bool | None = None
    if decision.verdict == "ask" and approver is not None:
        approved = session.answer(call.id, approver(ApprovalRequest(session.id, call, decision)), by=approver.name)
    return Admission(decision, approved)


def _admit(session: Session, call: ToolCall, approver: Approver | None) -> Decision:
    admission = admit(session, call, approver)
    if admission.may_run:
        return admission.decision
    if admission.decision.verdict == "ask" and approver is None:
        raise ApprovalRequired(admission.decision)
    raise ToolDenied(admission.decision)


def guarded(session: Session, *, name: str | None = None, approver: Approver | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: every call of the function is checked by ``session`` and its result recorded.

    A denied call raises :class:`~tether.errors.ToolDenied` without running the
    function; an ``ask`` goes to ``approver`` or raises
    :class:`~tether.errors.ApprovalRequired`. Exceptions from the function are
    recorded as error output (untrusted data the agent will see) and re-raised.
    Works for ``async def`` functions too.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        tool = name or fn.__name__
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = ToolCall(tool, _bind(fn, args, kwargs))
                _admit(session, call, approver)
                try:
                    result = await afn(*args, **kwargs)
                except Exception as exc:
                    session.record_result(call.id, f"{type(exc).__name__}: {exc}", error=True)
                    raise
                session.record_result(call.id, result)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            call = ToolCall(tool, _bind(fn, args, kwargs))
            _admit(session, call, approver)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                session.record_result(call.id, f"{type(exc).__name__}: {exc}", error=True)
                raise
            session.record_result(call.id, result)
            return result

        return wrapper

    return decorate


@dataclass(frozen=True, slots=True)
class StaticApprover:
    """An approver that always gives the same answer (for tests and batch runs)."""

    approve: bool
    name: str = "static"

    def __call__(self, request: ApprovalRequest) -> bool:
        return self.approve
