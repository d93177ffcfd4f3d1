"""Run every reliability drill, print a table per drill, write bench/results/drills.json.

    .venv/bin/python bench/drills/run.py [--only NAME,...]

NAME: upstream_faults, redis_restart, redis_stall, bad_input, access_matrix.

Exit status 1 when any invariant broke (or a drill could not run)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.drills import access_matrix, bad_input, redis_restart, upstream_faults  # noqa: E402
from bench.drills.common import RESULTS, DrillResult  # noqa: E402

DRILLS: dict[str, Callable[[], DrillResult]] = {
    "upstream_faults": upstream_faults.run,
    "redis_restart": redis_restart.run,
    "redis_stall": lambda: redis_restart.run(stall=True),
    "bad_input": bad_input.run,
    "access_matrix": access_matrix.run,
}


def table(result: DrillResult) -> str:
    head = f"== {result.name}: {'PASS' if result.ok else 'FAIL'} ({result.seconds:.1f} s)"
    counts = (
        f"   sent {result.sent} | acknowledged {result.acknowledged} | lost {result.lost} | "
        f"duplicates {result.duplicates} | max latency {result.max_latency:.3f} s"
    )
    lines = [head, counts]
    if result.error:
        lines.append(f"   ERROR (drill did not complete): {result.error[:500]}")
    for check in result.checks:
        mark = "ok  " if check.ok else "FAIL"
        detail = "" if check.ok or not check.detail else f"  -- {check.detail[:400]}"
        lines.append(f"   [{mark}] {check.name}{detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Coach reliability drills")
    parser.add_argument("--only", default="", help="comma-separated drill names")
    parser.add_argument("--out", default=str(RESULTS / "drills.json"))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(DRILLS)
    unknown = [n for n in names if n not in DRILLS]
    if unknown:
        parser.error(f"unknown drills: {unknown}; known: {list(DRILLS)}")
    started = time.monotonic()
    results: list[DrillResult] = []
    for name in names:
        print(f"-- running {name} ...", flush=True)
        result = DRILLS[name]()
        results.append(result)
        print(table(result), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "ok": all(r.ok for r in results),
        "seconds": round(time.monotonic() - started, 1),
        "drills": [r.as_dict() for r in results],
    }
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nall drills: {'PASS' if report['ok'] else 'FAIL'} in {report['seconds']} s -> {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
