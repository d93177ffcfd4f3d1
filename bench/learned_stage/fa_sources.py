"""Where the served system's false alarms come from, pooled over fresh sets, and what the
stage's other operating points and lowering (held) would change there.

Round thirty-two looked at this on the spent fresh sets before writing its protocol
(RETRAIN.md): which part of the served system - the lexicon, the stage's pos head or its
danger head - raises the false alarms, and whether any threshold of the served head
meets the false-positive target without missing a recall target.

Each text's two scores are taken once with the whole encoder (as served: no exit); each
variant then answers with :meth:`safety.learned.LearnedStage.classification_of` at its
own thresholds and is scored by :func:`safety.evaluation.evaluate`, so the figures are
those ``coach safety eval --learned [--lowers]`` prints. A false alarm is the lexicon's
when the lexicon alone found risk or danger, else the danger head's when the stage said
danger, else the pos head's. Files named ``holdout*`` are pooled for the rates; the
others (ordinary messages) count false alarms only.

usage: .venv/bin/python bench/learned_stage/fa_sources.py FILE...
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from safety import scan  # noqa: E402
from safety.evaluation import Report, evaluate, load_cases  # noqa: E402
from safety.learned import DATA_DIR, MIN_WORDS, SETTINGS_FILE, LearnedStage  # noqa: E402
from safety.second_stage import Classification  # noqa: E402
from safety.severity import Severity  # noqa: E402

#: the issue's targets, per fresh holdout
TARGETS = {"recall_risk_or_danger": 0.97, "recall_danger": 0.95, "false_positive_rate": 0.03}
#: (label, operating point, lowering on)
VARIANTS = (
    ("served (0.02)", "0.02", False),
    ("0.01 point", "0.01", False),
    ("0.03 point", "0.03", False),
    ("served + lowering (held)", "0.02", True),
)


def meets(report: Report) -> bool:
    return (
        report.recall_risk_or_danger >= TARGETS["recall_risk_or_danger"]
        and report.recall_danger >= TARGETS["recall_danger"]
        and report.false_positive_rate <= TARGETS["false_positive_rate"]
    )


def main(paths: list[str]) -> None:
    stage = LearnedStage.load(lowers=True, early_exit=False)
    t_lower = stage.t_lower
    points = json.loads((DATA_DIR / SETTINGS_FILE).read_text(encoding="utf-8"))["operating_points"]
    sets = {Path(p).stem: load_cases(p) for p in paths}
    texts = {c.text for cases in sets.values() for c in cases}
    lexicon_raised = {t for t in texts if scan(t).severity.rank >= Severity.RISK.rank}
    scores = {t: stage.scores(t) for t in texts if len(t.split()) >= MIN_WORDS}
    rows = []
    for label, point, lowers in VARIANTS:
        stage.t_pos = float(points[point]["t_pos"])
        stage.t_danger = float(points[point]["t_danger"])
        stage.t_lower = t_lower if lowers else None
        answers = {
            t: stage.classification_of(scores[t]) if t in scores else Classification(Severity.NONE)
            for t in texts
        }
        total: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        met = holdouts = 0
        for name, cases in sets.items():
            report = evaluate(
                cases, classifications=answers, second_stage_name="learned stage", lowers=lowers
            )
            false_alarms = [m for m in report.misses if m.kind == "false_alarm"]
            if not name.startswith("holdout"):
                total["everyday_false_alarms"] += len(false_alarms)
                continue
            holdouts += 1
            met += meets(report)
            total["negatives"] += report.negatives
            total["false_alarms"] += len(false_alarms)
            total["positives"] += report.positives
            total["missed"] += sum(m.kind == "missed" for m in report.misses)
            total["dangers"] += report.dangers
            total["missed_dangers"] += sum(
                m.expected == Severity.DANGER.value and m.kind in ("missed", "under_danger")
                for m in report.misses
            )
            for miss in false_alarms:
                if miss.text in lexicon_raised:
                    sources["lexicon"] += 1
                elif any(s.startswith("learned.danger") for s in miss.signals):
                    sources["danger head"] += 1
                else:
                    sources["pos head"] += 1
        row = {
            "variant": label,
            "false_positive_rate": round(total["false_alarms"] / max(total["negatives"], 1), 3),
            "recall_risk_or_danger": round(1 - total["missed"] / max(total["positives"], 1), 3),
            "recall_danger": round(1 - total["missed_dangers"] / max(total["dangers"], 1), 3),
            **total,
            "false_alarm_sources": dict(sources),
            "holdouts_meeting_all_targets": f"{met} of {holdouts}",
        }
        rows.append(row)
        print(
            f"{label:26s} FPR {row['false_positive_rate']:.3f} ({total['false_alarms']}: {dict(sources)})"
            f"  recall {row['recall_risk_or_danger']:.3f} ({total['missed']} missed)"
            f"  danger {row['recall_danger']:.3f} ({total['missed_dangers']} missed)"
            f"  everyday false alarms {total['everyday_false_alarms']}  all targets met on {met} of {holdouts}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
