"""The served safety layer measured on real text: passages people wrote and published,
kept on this machine only (README.md says why and how they were gathered).

    PYTHONPATH=. .venv/bin/python bench/real_text/measure.py [DIR] [--out RESULT.json] [--misses]

DIR (default ``$REAL_TEXT_DIR`` or ``/work/realposts``) holds ``*.jsonl`` files of
``{"text", "expected", "categories", "url", "kind", "topic", "uncertain"}``. Each case
is scanned as ``coach safety eval FILE --learned --lowers`` scans it (the lexicon, then
the learned stage raising and lowering as served), as ``--learned`` alone scans it
(raising only) and by the lexicon alone. Cases marked
``uncertain`` by their labeller are scanned and recorded but left out of the figures.

RESULT (default ``bench/real_text/results.json``) holds the figures per file and pooled,
for both systems, and one row per case with its address, the sha256 of its text, its
length, labels and the three verdicts - never the text itself.

Each case falls in one of two halves by its text's sha256 (even: ``read``, odd:
``sealed``). ``--misses`` prints the texts the served system got wrong in the ``read``
half only, for reading here; the ``sealed`` half's texts are not read, so that a later
change made after reading the first half can still be judged on cases nobody tuned on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from safety import scan  # noqa: E402
from safety.evaluation import Case, evaluate, learned_classifications, with_second_stage  # noqa: E402
from safety.learned import DEFAULT_MODEL_DIR, LearnedStage  # noqa: E402
from safety.second_stage import Classification  # noqa: E402
from safety.severity import Severity  # noqa: E402

#: the lexicon alone; with the learned stage raising only (lowering off,
#: ``COACH_SAFETY_LEARNED_LOWERS=false``); and as served (raising and lowering)
SYSTEMS = ("lexicon", "raise_only", "served")
#: the learned stage's answers per system that has it, keyed by text
Answers = dict[str, dict[str, Classification]]


def figures(cases: list[Case], system: str, answers: Answers) -> dict[str, Any]:
    """Recall (risk or danger), danger recall and false-positive rate of ``system`` on
    ``cases``, as ``coach safety eval`` computes them (``safety.evaluation.evaluate``), with
    the counts behind them."""
    report = evaluate(
        cases,
        classifications=answers.get(system),
        second_stage_name="learned stage",
        lowers=system == "served",
    )
    kinds = [(m.kind, m.expected) for m in report.misses]
    return dict(
        cases=report.cases,
        positives=report.positives,
        dangers=report.dangers,
        negatives=report.negatives,
        missed=sum(kind == "missed" for kind, _ in kinds),
        missed_danger=sum(expected == "danger" and kind != "false_alarm" for kind, expected in kinds),
        false_alarms=sum(kind == "false_alarm" for kind, _ in kinds),
        recall_risk_or_danger=round(report.recall_risk_or_danger, 3) if report.positives else None,
        recall_danger=round(report.recall_danger, 3) if report.dangers else None,
        false_positive_rate=round(report.false_positive_rate, 3) if report.negatives else None,
    )


def measure(
    paths: list[Path], stage: LearnedStage, raising_stage: LearnedStage
) -> tuple[list[dict[str, Any]], dict[str, str], Answers]:
    """Every case's verdicts, its text by hash, and the stage's answers; ``stage`` is
    loaded with lowering, ``raising_stage`` without."""
    rows: list[dict[str, Any]] = []
    texts: dict[str, str] = {}
    every: Answers = {"served": {}, "raise_only": {}}
    for path in paths:
        cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        answers = learned_classifications(stage, (c["text"] for c in cases), lowers=True)
        raising = learned_classifications(raising_stage, (c["text"] for c in cases), lowers=False)
        every["served"].update(answers)
        every["raise_only"].update(raising)
        for case in cases:
            text = case["text"]
            verdict = scan(text)
            served = with_second_stage(verdict, text, answers, source="learned", lowers=True)
            raised = with_second_stage(verdict, text, raising, source="learned", lowers=False)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in texts:  # the same passage gathered twice (two files): counted once
                continue
            half = "sealed" if int(digest, 16) % 2 else "read"
            texts[digest] = text
            rows.append(
                dict(
                    file=path.stem,
                    half=half,
                    url=case.get("url", ""),
                    sha256=digest,
                    chars=len(text),
                    kind=case.get("kind", path.stem),
                    topic=case.get("topic", ""),
                    expected=Severity(case["expected"]).value,
                    categories=case.get("categories", []),
                    uncertain=bool(case.get("uncertain", False)),
                    lexicon=verdict.severity.value,
                    raise_only=raised.severity.value,
                    served=served.severity.value,
                )
            )
    return rows, texts, every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default=os.environ.get("REAL_TEXT_DIR", "/work/realposts"))
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--misses", action="store_true")
    args = parser.parse_args()
    paths = sorted(Path(args.dir).glob("*.jsonl"))
    stage = LearnedStage.load(DEFAULT_MODEL_DIR, lowers=True, early_exit=True)
    raising_stage = LearnedStage.load(DEFAULT_MODEL_DIR, lowers=False, early_exit=True)
    rows, texts, answers = measure(paths, stage, raising_stage)
    result: dict[str, Any] = {"system": f"lexicon {scan('').policy_version}, learned stage {stage.version}"}
    groups = {p.stem: [r for r in rows if r["file"] == p.stem] for p in paths}
    groups["pooled"] = rows
    groups["pooled, read half"] = [r for r in rows if r["half"] == "read"]
    groups["pooled, sealed half"] = [r for r in rows if r["half"] == "sealed"]

    def counted(group: list[dict[str, Any]]) -> list[Case]:
        return [
            Case(texts[r["sha256"]], Severity(r["expected"]), tuple(r["categories"]))
            for r in group
            if not r["uncertain"]
        ]

    result["figures"] = {
        name: {s: figures(counted(g), s, answers) for s in SYSTEMS} for name, g in groups.items()
    }
    result["cases"] = rows
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    keys = ("recall_risk_or_danger", "recall_danger", "false_positive_rate")

    def fmt(f: dict[str, Any]) -> str:
        return " / ".join("  -  " if f[k] is None else f"{f[k]:.3f}" for k in keys)

    head = " | ".join(f"{s:>10} R / DR / FPR" for s in SYSTEMS)
    print(f"{'set':20} {'n':>4} {'pos':>4} {'dang':>4} {'neg':>4} | {head}")
    for name, by in result["figures"].items():
        lex = by["lexicon"]
        counts = f"{lex['cases']:>4} {lex['positives']:>4} {lex['dangers']:>4} {lex['negatives']:>4}"
        print(f"{name:20} {counts} | " + " | ".join(f"{fmt(by[s]):>23}" for s in SYSTEMS))
    if args.misses:
        for r in rows:
            wrong = (r["expected"] == "none") == (r["served"] in {"risk", "danger"})
            if r["half"] == "read" and (wrong or (r["expected"] == "danger" and r["served"] != "danger")):
                print(
                    f"\n[{r['file']}] expected {r['expected']} served {r['served']} (lexicon {r['lexicon']})"
                    f"{' UNCERTAIN' if r['uncertain'] else ''} {r['url']}\n{texts[r['sha256']][:700]}"
                )


if __name__ == "__main__":
    main()
