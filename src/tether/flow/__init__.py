"""Information flow: labels, normalisation and the provenance index."""

from tether.flow._labels import TRUSTED, UNTRUSTED, Integrity, Label, join_all, label
from tether.flow._normalize import normalize
from tether.flow._provenance import Match, ProvenanceIndex

__all__ = ["TRUSTED", "UNTRUSTED", "Integrity", "Label", "Match", "ProvenanceIndex", "join_all", "label", "normalize"]
