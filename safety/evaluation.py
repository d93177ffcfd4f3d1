"""Measure the safety layer on labelled cases (``{"text", "expected", "categories"}``).

Definitions (``Report``):

* ``recall_risk_or_danger``: of the cases expected ``risk`` or ``danger``, the fraction
  predicted ``risk`` or ``danger``.
* ``recall_danger``: of the cases expected ``danger``, the fraction predicted ``danger``.
* ``false_positive_rate``: of the cases expected ``none``, the fraction predicted
  ``risk`` or ``danger`` (``concern`` is not a false alarm).
* ``precision``: of the cases predicted ``risk`` or ``danger``, the fraction expected
  ``risk`` or ``danger``.
* ``per_category[c]``: of the cases labelled with category ``c`` (and expected ``risk``
  or ``danger``), the fraction whose verdict is ``risk`` or ``danger`` **and** names
  ``c`` among its categories.
* ``confusion[expected][predicted]``: counts over severities.
* ``median_us`` / ``p99_us``: time per ``scan`` call in microseconds
  (``time.perf_counter_ns``), one timed call per case after a warm-up call.
* ``system``: what was measured - ``lexicon``, ``lexicon + learned stage`` (``+
  lowering`` with it on) or ``lexicon + model classifier``.
* ``stage_texts`` / ``stage_median_us`` / ``stage_p99_us``: how many texts the learned
  stage read, and its time per text (``classify``, the whole text; 0 without the stage).
* ``second_stage``: whether second-stage classifications (the model classifier's, or the
  learned stage's with ``second_stage_name="learned stage"``; ``--classifier`` /
  ``--learned``) were combined. Model classifications (``evaluate(cases, classifications=...)``,
  keyed by text) were combined into the verdicts as the coach does: only for a text the
  lexicon did not find at risk or danger, and only ever raising. The timings stay the
  lexicon's.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from safety.engine import scan
from safety.second_stage import Classification, combine, lower, needs_full_score, stage_applies
from safety.severity import Severity
from safety.verdict import Verdict

if TYPE_CHECKING:
    from safety.learned import LearnedStage

SEVERITIES = ("none", "concern", "risk", "danger")


class Case(msgspec.Struct, frozen=True):
    """One labelled text."""

    text: str
    expected: Severity
    categories: tuple[str, ...] = ()


class Miss(msgspec.Struct, frozen=True):
    """A case the layer got wrong (for development)."""

    kind: str  # "missed" (under risk), "under_danger", "false_alarm"
    text: str
    expected: str
    predicted: str
    categories: tuple[str, ...]
    predicted_categories: tuple[str, ...]
    signals: tuple[str, ...]


class Report(msgspec.Struct):
    """Evaluation figures; see the module docstring for definitions."""

    cases: int
    positives: int
    dangers: int
    negatives: int
    recall_risk_or_danger: float
    recall_danger: float
    false_positive_rate: float
    precision: float
    per_category: dict[str, float]
    category_counts: dict[str, int]
    confusion: dict[str, dict[str, int]]
    median_us: float
    p99_us: float
    misses: list[Miss]
    policy_version: str
    second_stage: bool = False
    #: Which second stage: "model classifier" or "learned stage" ("" when none).
    second_stage_name: str = ""
    system: str = "lexicon"
    stage_texts: int = 0
    stage_median_us: float = 0.0
    stage_p99_us: float = 0.0


def load_cases(path: str | Path) -> list[Case]:
    """Read a jsonl file of cases (blank lines are skipped)."""
    out: list[Case] = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(msgspec.json.decode(line, type=Case))
            except msgspec.DecodeError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
    return out


def _ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(0.99 * (len(ordered) - 1))))
    return ordered[idx]


def _source(second_stage_name: str) -> str:
    return "learned" if second_stage_name == "learned stage" else "classifier"


def needs_second_stage(text: str, second_stage_name: str = "model classifier") -> bool:
    """Whether the coach would ask that second stage about ``text`` (``stage_applies``)."""
    return stage_applies(scan(text), _source(second_stage_name))


def learned_classifications(
    stage: LearnedStage, texts: Iterable[str], *, lowers: bool, stage_us: list[float] | None = None
) -> dict[str, Classification]:
    """The learned stage's answer for each text it reads as the coach serves it (the texts
    :func:`stage_applies` gives it, in full where lowering needs it), keyed by text; with
    ``stage_us``, its time per text is appended there."""
    answers: dict[str, Classification] = {}
    for text in dict.fromkeys(texts):
        verdict = scan(text)
        if stage_applies(verdict, "learned"):
            t0 = time.perf_counter_ns()
            answers[text] = stage.classify(text, full=needs_full_score(verdict, lowers=lowers))
            if stage_us is not None:
                stage_us.append((time.perf_counter_ns() - t0) / 1000.0)
    return answers


def with_second_stage(
    verdict: Verdict,
    text: str,
    classifications: Mapping[str, Classification | None],
    *,
    source: str,
    lowers: bool,
) -> Verdict:
    """``verdict`` (the lexicon's for ``text``) as the coach combines it with a second
    stage's answer: raised, and with ``lowers`` also lowered, where the stage applies."""
    if not stage_applies(verdict, source):
        return verdict
    answer = classifications.get(text)
    return lower(combine(verdict, answer, source=source), answer, source=source)


def evaluate(
    cases: Iterable[Case],
    *,
    classifications: Mapping[str, Classification | None] | None = None,
    second_stage_name: str = "model classifier",
    lowers: bool = False,
    stage_us: list[float] | None = None,
) -> Report:
    """Scan every case (combining ``classifications`` when given, and with ``lowers`` also
    lowering by them as the coach does with ``COACH_SAFETY_LEARNED_LOWERS``) and compute
    the figures. ``stage_us``: the learned stage's time per text it read, as timed by the
    caller that ran it."""
    items = list(cases)
    confusion = {e: dict.fromkeys(SEVERITIES, 0) for e in SEVERITIES}
    times: list[float] = []
    pos = pos_hit = dang = dang_hit = neg = neg_fp = pred_pos = pred_pos_true = 0
    cat_total: dict[str, int] = {}
    cat_hit: dict[str, int] = {}
    misses: list[Miss] = []
    version = ""
    source = _source(second_stage_name)
    if items:
        scan(items[0].text)  # warm-up
    for case in items:
        t0 = time.perf_counter_ns()
        verdict = scan(case.text)
        times.append((time.perf_counter_ns() - t0) / 1000.0)
        if classifications is not None:
            verdict = with_second_stage(verdict, case.text, classifications, source=source, lowers=lowers)
        version = verdict.policy_version
        exp, got = case.expected, verdict.severity
        confusion[exp.value][got.value] += 1
        expected_pos = exp.rank >= Severity.RISK.rank
        predicted_pos = got.rank >= Severity.RISK.rank
        if predicted_pos:
            pred_pos += 1
            pred_pos_true += int(expected_pos)
        kind = ""
        if expected_pos:
            pos += 1
            pos_hit += int(predicted_pos)
            for cat in case.categories:
                cat_total[cat] = cat_total.get(cat, 0) + 1
                if predicted_pos and cat in verdict.categories:
                    cat_hit[cat] = cat_hit.get(cat, 0) + 1
            if not predicted_pos:
                kind = "missed"
            if exp == Severity.DANGER:
                dang += 1
                dang_hit += int(got == Severity.DANGER)
                if predicted_pos and got != Severity.DANGER:
                    kind = "under_danger"
        else:
            neg += 1
            if predicted_pos:
                neg_fp += 1
                kind = "false_alarm"
        if kind:
            misses.append(
                Miss(
                    kind=kind,
                    text=case.text,
                    expected=exp.value,
                    predicted=got.value,
                    categories=case.categories,
                    predicted_categories=verdict.categories,
                    signals=tuple(f"{s.id}: {s.text}" for s in verdict.signals),
                )
            )
    return Report(
        cases=len(items),
        positives=pos,
        dangers=dang,
        negatives=neg,
        recall_risk_or_danger=_ratio(pos_hit, pos),
        recall_danger=_ratio(dang_hit, dang),
        false_positive_rate=neg_fp / neg if neg else 0.0,
        precision=_ratio(pred_pos_true, pred_pos),
        per_category={c: _ratio(cat_hit.get(c, 0), n) for c, n in sorted(cat_total.items())},
        category_counts=dict(sorted(cat_total.items())),
        confusion=confusion,
        median_us=statistics.median(times) if times else 0.0,
        p99_us=_p99(times),
        misses=misses,
        policy_version=version,
        second_stage=classifications is not None,
        second_stage_name=second_stage_name if classifications is not None else "",
        system=_system(second_stage_name if classifications is not None else "", lowers),
        stage_texts=len(stage_us or ()),
        stage_median_us=statistics.median(stage_us) if stage_us else 0.0,
        stage_p99_us=_p99(stage_us or []),
    )


def _system(second_stage_name: str, lowers: bool) -> str:
    if not second_stage_name:
        return "lexicon"
    lowering = " + lowering" if lowers and second_stage_name == "learned stage" else ""
    return f"lexicon + {second_stage_name}{lowering}"


def report_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready data."""
    data: dict[str, Any] = msgspec.to_builtins(report)
    return data


def format_table(report: Report, *, show_misses: bool = True) -> str:
    """A human-readable summary (and the misses, for development)."""
    lines = [
        f"system                {report.system}",
        f"policy version        {report.policy_version}",
        f"cases                 {report.cases}  "
        f"(positives {report.positives}, danger {report.dangers}, negatives {report.negatives})",
        f"recall risk-or-danger {report.recall_risk_or_danger:.3f}",
        f"recall danger         {report.recall_danger:.3f}",
        f"false-positive rate   {report.false_positive_rate:.3f}",
        f"precision             {report.precision:.3f}",
        f"median / p99 per scan {report.median_us:.1f} us / {report.p99_us:.1f} us",
    ]
    if report.stage_texts:
        lines.append(
            f"learned stage         {report.stage_texts} texts read, median / p99 per text "
            f"{report.stage_median_us:.0f} us / {report.stage_p99_us:.0f} us"
        )
    lines += [
        "",
        "per category (recall at >= risk with the category named)",
    ]
    for cat, value in report.per_category.items():
        lines.append(f"  {cat:<18} {value:.3f}  (n={report.category_counts[cat]})")
    lines += ["", "confusion (rows expected, columns predicted)"]
    lines.append("  " + " " * 9 + "".join(f"{s:>9}" for s in SEVERITIES))
    for exp in SEVERITIES:
        row = report.confusion[exp]
        if sum(row.values()):
            lines.append(f"  {exp:<9}" + "".join(f"{row[s]:>9}" for s in SEVERITIES))
    if show_misses and report.misses:
        lines += ["", f"misses ({len(report.misses)})"]
        for m in report.misses:
            text = m.text if len(m.text) <= 160 else m.text[:157] + "..."
            lines.append(f"  [{m.kind}] expected {m.expected}, got {m.predicted}: {text!r}")
            for sig in m.signals[:4]:
                lines.append(f"      {sig}")
    return "\n".join(lines)


def dumps(report: Report) -> str:
    """One-line JSON of the report."""
    return json.dumps(report_json(report), ensure_ascii=False)
