"""Oversight of the sessions in a store: what a person sees (sessions, timelines, pending calls
with the provenance of every argument) and does (answer, pause, resume, kill), and the
service's access tokens; the guard as a service (:class:`GuardService`: sessions of agents that
run elsewhere). Needs no web framework; the HTTP service is :mod:`tether.server.web`.
"""

from tether.server._activity import Activity, session_activity
from tether.server._audit import ChainStatus, ReplayRow, chain_status, replay_changes
from tether.server._guard_service import CheckAnswer, GuardService
from tether.server._oversight import (
    DEFAULT_ENDORSEMENT_S,
    HIDDEN,
    INTERNAL_PREFIX,
    Action,
    AnswerOutcome,
    Oversight,
    OversightError,
    StopOutcome,
)
from tether.server._templating import page_templates
from tether.server._tokens import ROLES, Role, TokenBook, TokenError, TokenInfo, import_token_file, tokens_path
from tether.server._views import (
    ArgView,
    Budget,
    CheckinView,
    EndorsementView,
    PendingCall,
    ReasonView,
    SessionRow,
    SourceView,
    TimelineEntry,
)

__all__ = [
    "Activity",
    "DEFAULT_ENDORSEMENT_S",
    "HIDDEN",
    "INTERNAL_PREFIX",
    "Action",
    "AnswerOutcome",
    "ArgView",
    "Budget",
    "CheckAnswer",
    "GuardService",
    "ChainStatus",
    "CheckinView",
    "EndorsementView",
    "Oversight",
    "OversightError",
    "PendingCall",
    "ROLES",
    "ReasonView",
    "Role",
    "ReplayRow",
    "SessionRow",
    "SourceView",
    "StopOutcome",
    "TimelineEntry",
    "TokenBook",
    "TokenError",
    "TokenInfo",
    "chain_status",
    "page_templates",
    "replay_changes",
    "session_activity",
    "import_token_file",
    "tokens_path",
]
