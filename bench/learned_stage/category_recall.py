"""Recall of risk-or-danger by expected category, lexicon + learned stage as served, on
the given case files, pooled (a case counts once for each category it is labelled with;
a category is "caught" when the case is flagged at all). Aggregates only.

usage: .venv/bin/python bench/learned_stage/category_recall.py FILE...
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from safety.evaluation import evaluate, load_cases  # noqa: E402
from safety.learned import LearnedStage  # noqa: E402


def main() -> None:
    stage = LearnedStage.load()
    hit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for path in sys.argv[1:]:
        cases = load_cases(path)
        report = evaluate(
            cases,
            classifications={c.text: stage.classify(c.text) for c in cases},
            second_stage_name="learned stage",
        )
        missed = {m.text for m in report.misses if m.kind == "missed"}
        for case in cases:
            for category in case.categories if case.expected.value != "none" else ():
                total[category] += 1
                hit[category] += case.text not in missed
    for category in sorted(total, key=lambda c: hit[c] / total[c]):
        print(f"{category:18} {hit[category]:4}/{total[category]:<4} {hit[category] / total[category]:.2f}")


if __name__ == "__main__":
    main()
