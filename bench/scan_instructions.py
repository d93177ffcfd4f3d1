"""Instructions per ``safety.scan`` of a 300-character message, counted by callgrind.

Wall-clock medians of a ~50 us scan move by +-30 % between runs on a shared VM; an
instruction count barely does, once string hashing is fixed (``PYTHONHASHSEED=0`` for
the child: a random seed changes set iteration order and moved the count by up to
~8 %), so this is the figure to compare two versions of the scanner by. It runs the workload twice
under ``valgrind --tool=callgrind`` (no scans, then N scans) and divides the difference.

Run: ``.venv/bin/python bench/scan_instructions.py [--scans 500] [--workload everyday]``
(needs valgrind; about six minutes per workload on this machine). Give ``--root DIR`` to count another
checkout (a ``git worktree`` of an older commit) with the same interpreter.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
#: address-space randomisation off for the child: objects hashed by id (sets of compiled
#: patterns) iterate in an order that follows their addresses, and with ASLR on two runs
#: of the same code under a fixed PYTHONHASHSEED still differed by ~8 % (365k vs 394k)
NO_ASLR = ("setarch", platform.machine(), "-R") if shutil.which("setarch") else ()

CHILD = """
import random, sys
root, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path[:0] = [root + "/bench", root]
from safety_scan import EVERYDAY, make_text
from safety import scan
rng = random.Random(1)
texts = [make_text(300, rng, EVERYDAY if kind == "everyday" else None) for _ in range(50)]
scan(texts[0])
for i in range(n):
    scan(texts[i % 50])
"""


def collected(root: Path, scans: int, workload: str) -> int:
    out = subprocess.run(
        [*NO_ASLR, *VALGRIND, sys.executable, "-c", CHILD, str(root), str(scans), workload],
        capture_output=True,
        text=True,
        check=True,
        # string hashing is randomised per process, and set iteration order with it: without
        # a fixed seed two runs of the same code differed by up to ~8 %
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no callgrind total in:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=500)
    ap.add_argument("--workload", choices=("everyday", "dense"), action="append")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    for workload in args.workload or ["everyday"]:
        base = collected(args.root, 0, workload)
        total = collected(args.root, args.scans, workload)
        per_scan = (total - base) / args.scans
        print(f"{workload}: {per_scan:,.0f} instructions per 300-character scan ({args.root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
