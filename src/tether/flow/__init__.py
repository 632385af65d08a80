"""Information flow: labels, normalisation, provenance of values and taint of outputs.

Other packages use :class:`FlowTracker` (one per session) and the names below; the
private modules are this package's own.
"""

from tether.flow._labels import TRUSTED, UNTRUSTED, Integrity, Label, join_all, label
from tether.flow._matches import Match
from tether.flow._normalize import contains_word, normalize, number_forms, percent_decode
from tether.flow._outflow import Trace
from tether.flow._principals import canonical_principal, canonical_readers
from tether.flow._provenance import ProvenanceIndex
from tether.flow._tokens import DELIMITERS, EDGE_PUNCT, occurs_in
from tether.flow._tracker import FlowLimits, FlowTracker, Origin, walk_leaves

__all__ = [
    "DELIMITERS",
    "EDGE_PUNCT",
    "TRUSTED",
    "UNTRUSTED",
    "FlowLimits",
    "FlowTracker",
    "Integrity",
    "Label",
    "Match",
    "Origin",
    "ProvenanceIndex",
    "Trace",
    "canonical_principal",
    "canonical_readers",
    "contains_word",
    "join_all",
    "label",
    "normalize",
    "number_forms",
    "percent_decode",
    "occurs_in",
    "walk_leaves",
]
