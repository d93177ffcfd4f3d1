"""``python -m safety eval FILE [--format json]`` (the coach CLI delegates here).

``--classifier`` adds the model-based second stage; it needs a model, which only the
coach has, so it works as ``coach safety eval FILE --classifier`` (the coach passes a
``classify`` function in). ``--learned [--model-dir DIR]`` adds the local learned stage
(:mod:`safety.learned`; the encoder built by ``python -m safety.learned_build``) instead,
exactly as the coach combines it: only for a text the lexicon did not flag, raise only;
``--learned --lowers`` as the coach does with ``COACH_SAFETY_LEARNED_LOWERS`` on (the stage
may also lower a lexicon risk or danger it is sure about to concern; docs/safety.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping

from safety.engine import POLICY_VERSION, scan
from safety.evaluation import dumps, evaluate, format_table, load_cases, needs_second_stage
from safety.second_stage import Classification, needs_full_score, stage_applies

#: Texts -> each text's classification (None: the classifier failed on it).
Classify = Callable[[list[str]], Mapping[str, Classification | None]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safety", description="Coach safety layer tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="measure the safety layer on a jsonl file of cases")
    ev.add_argument("file", help='jsonl with {"text", "expected", "categories"} per line')
    ev.add_argument("--format", choices=("table", "json"), default="table")
    ev.add_argument("--no-misses", action="store_true", help="table: do not list misses")
    ev.add_argument(
        "--classifier",
        action="store_true",
        help="coach safety eval only: add the model classifier (COACH_MODEL_BASE_URL / OPENAI_API_KEY); "
        "one model call per case the lexicon does not flag",
    )
    ev.add_argument(
        "--learned",
        action="store_true",
        help="add the local learned stage (embeddings + SVM heads; needs `make model`)",
    )
    ev.add_argument(
        "--lowers",
        action="store_true",
        help="with --learned: let the stage lower verdicts it is sure about (COACH_SAFETY_LEARNED_LOWERS)",
    )
    ev.add_argument(
        "--model-dir",
        help="the learned stage's encoder folder (default: COACH_SAFETY_MODEL_DIR or .cache/safety-model)",
    )
    sc = sub.add_parser("scan", help="scan one text and print the verdict as JSON")
    sc.add_argument("text")
    sub.add_parser("version", help="print the policy version")
    return parser


def main(argv: list[str] | None = None, *, classify: Classify | None = None) -> int:
    """Run the CLI; returns the exit code. ``classify`` serves ``eval --classifier``."""
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
        name = "model classifier"
        if args.classifier and args.learned:
            raise ValueError("--classifier and --learned: evaluate one second stage at a time")
        if args.lowers and not args.learned:
            raise ValueError("--lowers is the learned stage's rule: use it with --learned")
        if args.learned:
            from safety.learned import DEFAULT_MODEL_DIR, LearnedStage

            stage = LearnedStage.load(args.model_dir or DEFAULT_MODEL_DIR, lowers=args.lowers)
            name = "learned stage"
            # the lexicon's verdict of each text, once: which texts the stage reads, and in full
            lexicon = {c.text: scan(c.text) for c in cases}
            classifications = {
                text: stage.classify(text, full=needs_full_score(verdict, lowers=args.lowers))
                for text, verdict in lexicon.items()
                if stage_applies(verdict, "learned", lowers=args.lowers)
            }
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
    report = evaluate(cases, classifications=classifications, second_stage_name=name, lowers=args.lowers)
    if args.format == "json":
        print(dumps(report))
    else:
        print(format_table(report, show_misses=not args.no_misses))
    return 0
