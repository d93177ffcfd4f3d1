"""Coach safety layer: detection only, no web code.

``scan(text, context) -> Verdict`` finds abuse and crisis signals; ``accumulate`` adds
mild signals up over a session; ``resources_for`` picks help lines by country.
"""

from __future__ import annotations

from safety.accumulator import SessionSignals, accumulate
from safety.engine import POLICY_VERSION, scan, scan_reply
from safety.resources import Resource, country_name, resources_for
from safety.severity import Severity, max_severity
from safety.verdict import ScanContext, Signal, Verdict

__all__ = [
    "POLICY_VERSION",
    "Resource",
    "ScanContext",
    "SessionSignals",
    "Severity",
    "Signal",
    "Verdict",
    "accumulate",
    "country_name",
    "max_severity",
    "resources_for",
    "scan",
    "scan_reply",
]
