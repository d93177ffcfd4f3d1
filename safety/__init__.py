"""Coach safety layer: detection only, no web code.

``scan(text, context) -> Verdict`` finds abuse and crisis signals; ``accumulate`` adds
mild signals up over a session; ``resources_for`` picks help lines by country.
``parse_classification`` and ``combine`` are the pure half of the optional model-based
second stage: a checked classifier answer can only raise a verdict. ``lower`` is the
learned stage's opt-in lowering rule (off unless the service switches it on).
"""

from __future__ import annotations

from safety.accumulator import SessionSignals, accumulate
from safety.engine import POLICY_VERSION, scan, scan_reply
from safety.resources import Resource, country_name, resources_for
from safety.second_stage import (
    CLASSIFICATION_SCHEMA,
    Classification,
    InvalidClassification,
    combine,
    lower,
    lowered_from,
    needs_full_score,
    parse_classification,
    stage_applies,
)
from safety.severity import Severity, max_severity
from safety.verdict import ScanContext, Signal, Verdict

__all__ = [
    "CLASSIFICATION_SCHEMA",
    "POLICY_VERSION",
    "Classification",
    "InvalidClassification",
    "Resource",
    "ScanContext",
    "SessionSignals",
    "Severity",
    "Signal",
    "Verdict",
    "accumulate",
    "combine",
    "country_name",
    "lower",
    "lowered_from",
    "max_severity",
    "needs_full_score",
    "parse_classification",
    "resources_for",
    "scan",
    "scan_reply",
    "stage_applies",
]
