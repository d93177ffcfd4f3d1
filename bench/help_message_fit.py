"""Which help message the lexicon's disclosures get, against the one their labels imply.

For every case in tests/safety_cases expected at risk or danger, with categories, that the
lexicon raises: the template ``coach.helpmessages.choose_template`` picks, and the one the
labels imply (``harm_to_others`` -> the author-of-harm message, ``self_harm`` -> the
self-harm message, anything else -> the general one). Prints the mismatches by kind.

usage: .venv/bin/python bench/help_message_fit.py   (run from the checkout to measure)
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coach.catalog import load_catalog  # noqa: E402
from coach.helpmessages import choose_template  # noqa: E402
from safety import Severity, scan  # noqa: E402
from safety.evaluation import load_cases  # noqa: E402


def implied(categories: tuple[str, ...]) -> str:
    if "harm_to_others" in categories:
        return "author_of_harm"
    return "self_harm" if "self_harm" in categories else "general"


def shown(template_id: str) -> str:
    if template_id == "help.author_of_harm":
        return "author_of_harm"
    return "self_harm" if template_id.endswith(".self_harm") else "general"


def main() -> None:
    catalog = load_catalog(ROOT / "prompts")
    kinds: collections.Counter[tuple[str, str]] = collections.Counter()
    raised = 0
    for path in sorted((ROOT / "tests" / "safety_cases").glob("*.jsonl")):
        for case in load_cases(path):
            if case.expected is Severity.NONE or not case.categories:
                continue
            verdict = scan(case.text)
            if not verdict.is_disclosure:
                continue
            raised += 1
            kinds[(implied(case.categories), shown(choose_template(catalog, verdict).id))] += 1
    wrong = {k: n for k, n in kinds.items() if k[0] != k[1]}
    print(f"{raised} labelled disclosures raised; wrong message by the labels: {sum(wrong.values())}")
    for (want, got), n in sorted(wrong.items()):
        print(f"  labels imply {want:15} shown {got:15} {n}")


if __name__ == "__main__":
    main()
