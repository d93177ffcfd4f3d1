"""``python -m safety eval FILE [--format json]`` (the coach CLI delegates here).

By default ``eval`` measures the safety layer as the coach serves it: the lexicon and the
local learned stage (:mod:`safety.learned`; the encoder built by ``make model``), combined
exactly as the coach combines them - the stage reads a text the lexicon did not flag and
can only raise. ``coach safety eval`` follows the coach's own settings
(``COACH_SAFETY_LEARNED``, ``COACH_SAFETY_LEARNED_LOWERS``, ``COACH_SAFETY_MODEL_DIR``,
passed in as :class:`Served`); when the stage cannot load, the lexicon is measured alone,
as the coach would then serve it, and stderr says so. ``--lexicon`` measures the lexicon
alone; ``--learned`` insists on the stage (an error if it cannot load); ``--lowers`` /
``--no-lowers`` as the coach does with ``COACH_SAFETY_LEARNED_LOWERS`` on (the default
since round thirty-eight: the stage may also lower a lexicon risk or danger it is sure
about to concern, and the coach holds that message for its author) or off; docs/safety.md.

``--classifier`` measures the lexicon with the model-based second stage instead; it
needs a model, which only the coach has, so it works as ``coach safety eval FILE
--classifier`` (the coach passes a ``classify`` function in).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from safety.engine import POLICY_VERSION, scan
from safety.evaluation import (
    dumps,
    evaluate,
    format_table,
    learned_classifications,
    load_cases,
    needs_second_stage,
)
from safety.second_stage import Classification

#: Texts -> each text's classification (None: the classifier failed on it).
Classify = Callable[[list[str]], Mapping[str, Classification | None]]


class Served(NamedTuple):
    """The learned stage as the coach is configured to serve it (the coach's defaults
    unless ``coach safety eval`` passes its settings)."""

    learned: bool = True
    lowers: bool = True
    model_dir: Path | None = None
    early_exit: bool = True


#: The coach's defaults: the learned stage on, lowering (held) on since round thirty-eight.
SERVED_DEFAULT = Served()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safety", description="Coach safety layer tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="measure the safety layer on a jsonl file of cases")
    ev.add_argument("file", help='jsonl with {"text", "expected", "categories"} per line')
    ev.add_argument("--format", choices=("table", "json"), default="table")
    ev.add_argument("--no-misses", action="store_true", help="table: do not list misses")
    system = ev.add_mutually_exclusive_group()
    system.add_argument(
        "--lexicon",
        action="store_true",
        help="the lexicon alone (by default: the lexicon and the learned stage, as the coach serves them)",
    )
    system.add_argument(
        "--learned",
        action="store_true",
        help="the lexicon and the local learned stage, and an error if the stage cannot load "
        "(needs `make model`; by default it falls back to the lexicon alone, as the coach does)",
    )
    system.add_argument(
        "--classifier",
        action="store_true",
        help="coach safety eval only: the lexicon and the model classifier (COACH_MODEL_BASE_URL / "
        "OPENAI_API_KEY); one model call per case the lexicon does not flag",
    )
    ev.add_argument(
        "--lowers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with the learned stage: let it lower verdicts it is sure about, or not (--no-lowers); by "
        "default as the coach serves it (COACH_SAFETY_LEARNED_LOWERS, on since round thirty-eight)",
    )
    ev.add_argument(
        "--model-dir",
        help="the learned stage's encoder folder (default: COACH_SAFETY_MODEL_DIR or .cache/safety-model)",
    )
    sc = sub.add_parser("scan", help="scan one text and print the verdict as JSON")
    sc.add_argument("text")
    sub.add_parser("version", help="print the policy version")
    return parser


def main(
    argv: list[str] | None = None, *, classify: Classify | None = None, served: Served = SERVED_DEFAULT
) -> int:
    """Run the CLI; returns the exit code. ``classify`` serves ``eval --classifier``;
    ``served`` is the learned stage ``eval`` measures by default."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(POLICY_VERSION)
        return 0
    if args.command == "scan":
        import msgspec

        print(msgspec.json.encode(scan(args.text)).decode())
        return 0
    try:
        cases = load_cases(args.file)
        classifications: Mapping[str, Classification | None] | None = None
        stage_us: list[float] = []
        name = "model classifier"
        # no flag naming another system: the one the coach serves
        as_served = not args.lexicon and not args.classifier
        lowers = args.lowers if args.lowers is not None else (served.lowers and as_served)
        if args.lowers and not as_served:
            raise ValueError("--lowers is the learned stage's rule: use it without --lexicon or --classifier")
        stage = None
        if args.learned or (served.learned and as_served):
            from safety.learned import DEFAULT_MODEL_DIR, LearnedStage, LearnedStageUnavailable

            model_dir = args.model_dir or served.model_dir or DEFAULT_MODEL_DIR
            try:
                stage = LearnedStage.load(model_dir, lowers=lowers, early_exit=served.early_exit)
            except LearnedStageUnavailable as exc:
                if args.learned or args.lowers:
                    raise
                print(
                    f"safety eval: the learned stage cannot load ({exc}); measuring the lexicon alone, "
                    "as the coach would serve it (`make model` builds the stage)",
                    file=sys.stderr,
                )
                lowers = False
        elif args.lowers:
            raise ValueError("--lowers is the learned stage's rule, and the stage is off here")
        if stage is not None:
            name = "learned stage"
            classifications = learned_classifications(
                stage, (c.text for c in cases), lowers=lowers, stage_us=stage_us
            )
        elif args.classifier:
            if classify is None:
                raise ValueError(
                    "--classifier needs a model: run it as `coach safety eval FILE --classifier`"
                )
            texts = list(dict.fromkeys(c.text for c in cases if needs_second_stage(c.text)))
            classifications = classify(texts)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"safety eval: {exc}", file=sys.stderr)
        return 2
    report = evaluate(
        cases, classifications=classifications, second_stage_name=name, lowers=lowers, stage_us=stage_us
    )
    if args.format == "json":
        print(dumps(report))
    else:
        print(format_table(report, show_misses=not args.no_misses))
    return 0
