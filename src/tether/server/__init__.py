"""Oversight of the sessions in a store: what a person sees (sessions, timelines, pending calls
with the provenance of every argument) and does (answer, pause, resume, kill), and the
service's access tokens; the guard as a service (:class:`GuardService`: sessions of agents that
run elsewhere). Needs no web framework; the HTTP service is :mod:`tether.server.web`.
"""

from tether.server._guard_service import CheckAnswer, GuardService
from tether.server._oversight import INTERNAL_PREFIX, Action, AnswerOutcome, Oversight, OversightError, StopOutcome
from tether.server._tokens import ROLES, Role, TokenBook, TokenError, TokenInfo, tokens_path
from tether.server._views import ArgView, Budget, PendingCall, ReasonView, SessionRow, SourceView, TimelineEntry

__all__ = [
    "INTERNAL_PREFIX",
    "Action",
    "AnswerOutcome",
    "ArgView",
    "Budget",
    "CheckAnswer",
    "GuardService",
    "Oversight",
    "OversightError",
    "PendingCall",
    "ROLES",
    "ReasonView",
    "Role",
    "SessionRow",
    "SourceView",
    "StopOutcome",
    "TimelineEntry",
    "TokenBook",
    "TokenError",
    "TokenInfo",
    "tokens_path",
]
