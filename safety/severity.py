"""Severity levels used across the safety layer."""

from __future__ import annotations

import enum


class Severity(str, enum.Enum):  # noqa: UP042 - the coach's API names str + Enum
    """How serious a signal is; ordered none < concern < risk < danger."""

    NONE = "none"
    CONCERN = "concern"
    RISK = "risk"
    DANGER = "danger"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS: dict[Severity, int] = {
    Severity.NONE: 0,
    Severity.CONCERN: 1,
    Severity.RISK: 2,
    Severity.DANGER: 3,
}


def max_severity(*severities: Severity) -> Severity:
    """The most serious of ``severities`` (``NONE`` when empty)."""
    best = Severity.NONE
    for sev in severities:
        if _RANKS[sev] > _RANKS[best]:
            best = sev
    return best
