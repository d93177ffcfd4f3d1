"""``python -m safety eval FILE [--format json]`` (the coach CLI delegates here)."""

from __future__ import annotations

import argparse
import sys

from safety.engine import POLICY_VERSION, scan
from safety.evaluation import dumps, evaluate, format_table, load_cases


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safety", description="Coach safety layer tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="measure the safety layer on a jsonl file of cases")
    ev.add_argument("file", help='jsonl with {"text", "expected", "categories"} per line')
    ev.add_argument("--format", choices=("table", "json"), default="table")
    ev.add_argument("--no-misses", action="store_true", help="table: do not list misses")
    sc = sub.add_parser("scan", help="scan one text and print the verdict as JSON")
    sc.add_argument("text")
    sub.add_parser("version", help="print the policy version")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
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
    except (OSError, ValueError) as exc:
        print(f"safety eval: {exc}", file=sys.stderr)
        return 2
    report = evaluate(cases)
    if args.format == "json":
        print(dumps(report))
    else:
        print(format_table(report, show_misses=not args.no_misses))
    return 0
