"""How many bland exercise answers the learned stage raises: "Here is my answer for
<step title>." for each of the catalog's steps (the sentence the offline exercise tests
post), scored by each given heads folder in the service's layout.

usage: bland.py DATA_DIR[@POINT]...   e.g. bland.py safety/data/learned safety/data/learned@0.01
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from coach.catalog import load_catalog  # noqa: E402
from safety import Severity  # noqa: E402
from safety.learned import LearnedStage  # noqa: E402


def main() -> None:
    catalog = load_catalog(ROOT / "prompts")
    texts = [f"Here is my answer for {s.title}." for e in catalog.exercises.values() for s in e.steps]
    for arg in sys.argv[1:]:
        folder, _, point = arg.partition("@")
        stage = LearnedStage.load(data_dir=Path(folder), operating_point=point or None)
        raised = [(t, stage.classify(t).severity.value) for t in texts]
        raised = [(t, sev) for t, sev in raised if sev != Severity.NONE.value]
        print(f"{arg}: {len(raised)} of {len(texts)} raised", raised)


if __name__ == "__main__":
    main()
