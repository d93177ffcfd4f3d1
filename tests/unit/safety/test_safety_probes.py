"""The audit probes of 2026-12-05: messages written for one construction each.

Four audits (one per group of the lexicon's contexts, plus negation and the escalators)
and a probe of less common forms wrote about 1,240 messages - disclosures that share a
context's words ("His team lost the match and he punched me") and look-alikes the context
exists for ("the bouncer kicked us out") - in `tests/safety_probes/*.tsv` (`EXPECT<TAB>text`:
`danger`, `risk` = at least risk, `below` = below risk). Each is a test of the lexicon alone.

The lexicon still gets some wrong; those are listed in `known_wrong.txt`, each marked
`xfail(strict=True)` so that one which starts passing must be taken off the list
(bench/learned_stage/RETRAIN.md, rounds seventeen and eighteen).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safety import Severity, scan

PROBES = Path(__file__).resolve().parents[2] / "safety_probes"
KNOWN_WRONG = {
    line.strip()
    for line in (PROBES / "known_wrong.txt").read_text(encoding="utf-8").splitlines()
    if line.strip()
}


def _cases() -> list[object]:
    cases: list[object] = []
    for path in sorted(PROBES.glob("*.tsv")):
        for line in path.read_text(encoding="utf-8").splitlines():
            expect, text = line.split("\t", 1)
            marks = (
                [pytest.mark.xfail(strict=True, reason="known lexicon miss")] if text in KNOWN_WRONG else []
            )
            cases.append(pytest.param(expect, text, id=f"{path.stem}:{text[:40]}", marks=marks))
    return cases


@pytest.mark.parametrize(("expect", "text"), _cases())
def test_probe(expect: str, text: str) -> None:
    severity = scan(text).severity
    if expect == "danger":
        assert severity is Severity.DANGER
    elif expect == "risk":
        assert severity.rank >= Severity.RISK.rank
    else:
        assert severity.rank < Severity.RISK.rank
