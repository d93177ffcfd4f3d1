"""Per-case verdicts of the served system (lexicon, learned stage, lowering held on), as
``coach safety eval FILE --learned --lowers`` computes them, for the ``safety`` package of
the current directory (run it from a worktree to judge that worktree's files; rounds
thirty-nine and forty compared a candidate with the served system this way).

    cd WORKTREE && COACH_SAFETY_MODEL_DIR=DIR python bench/learned_stage/per_case.py OUT.json FILE...

OUT.json: {file stem: [{text, expected, lexicon, served}, ...]} in the files' order.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())

from safety import scan  # noqa: E402
from safety.evaluation import learned_classifications, load_cases, with_second_stage  # noqa: E402
from safety.learned import DEFAULT_MODEL_DIR, LearnedStage  # noqa: E402


def main(out: Path, files: list[Path]) -> None:
    stage = LearnedStage.load(DEFAULT_MODEL_DIR, lowers=True, early_exit=True)
    result: dict[str, list[dict[str, str]]] = {}
    for path in files:
        cases = load_cases(path)
        answers = learned_classifications(stage, (c.text for c in cases), lowers=True)
        rows = []
        for case in cases:
            verdict = scan(case.text)
            served = with_second_stage(verdict, case.text, answers, source="learned", lowers=True)
            rows.append(
                dict(
                    text=case.text,
                    expected=case.expected.value,
                    lexicon=verdict.severity.value,
                    served=served.severity.value,
                )
            )
        result[path.stem] = rows
    out.write_text(json.dumps(result, indent=0), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
