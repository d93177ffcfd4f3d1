"""Benchmark ``safety.scan``: median/p99 per scan at 300 chars, and scaling with length.

Workloads: ``everyday`` (ordinary couple talk), ``mixed`` (about one sentence in four
hits the lexicon: figures of speech, conflict words, disclosures) and ``dense`` (every
sentence hits it - a worst case, also used for the 1k/10k/100k scaling rows).

Run: ``.venv/bin/python bench/safety_scan.py`` (writes bench/results/safety_scan.json).
Not a test: speed is measured here, never asserted in the test suite.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safety import POLICY_VERSION, scan  # noqa: E402

#: everyday couple talk (the bulk of real traffic)
EVERYDAY = [
    "We're trying to plan a weekend away but the dates keep clashing with work.",
    "She wants to repaint the living room and I honestly don't mind the colour.",
    "Can you suggest a short exercise for when we both get home tired?",
    "I loved the check-in last night, it felt like we actually listened.",
    "He cooked dinner and we talked about his new job for an hour.",
    "We disagree about how much to spend on holidays this year.",
    "I want to say thank you more often, he does so much for the kids.",
    "Our anniversary is next month and I have no idea what to plan.",
    "My partner is quieter than me and I never know if she's upset.",
    "We keep forgetting to schedule date night, any tips for sticking to it?",
]

#: sentences that hit the lexicon (figures of speech and disclosures): a worst case
SENTENCES = [
    "We had a long talk about the holidays and who we visit first this year.",
    "He said he was sorry for snapping at me, and we made dinner together.",
    "Honestly this commute is killing me and I'm tired when I get home.",
    "She beat me at chess again and won't stop bragging about it, haha.",
    "I feel like we only talk about the kids' schedules and the bills lately.",
    "My husband told me he wants to try the honesty hour this weekend.",
    "We argued about money, he raised his voice and then apologised.",
    "I'm scared of how she'll react when I bring up moving closer to my parents.",
    "He hit me up last night to ask if I wanted to get takeaway.",
    "We watched a crime show where the husband poisons his wife, so dark.",
    "He grabbed my wrist so hard it left bruises and I don't know what to do.",
    "She threatened to take the kids if I ever leave her.",
    "I keep thinking everyone would be better off without me.",
    "My boyfriend checks my phone every night and reads my messages.",
]


def make_text(n_chars: int, rng: random.Random, pool: list[str] | None = None) -> str:
    pool = pool or SENTENCES
    parts: list[str] = []
    total = 0
    while total < n_chars:
        s = rng.choice(pool)
        parts.append(s)
        total += len(s) + 1
    return " ".join(parts)[:n_chars]


def measure(texts: list[str], repeat: int) -> tuple[float, float]:
    times: list[float] = []
    for _ in range(repeat):
        for t in texts:
            t0 = time.perf_counter_ns()
            scan(t)
            times.append((time.perf_counter_ns() - t0) / 1000.0)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def main() -> int:
    rng = random.Random(20261122)
    scan("warm up")
    rows = []
    mixed = EVERYDAY * 4 + SENTENCES  # about one sentence in four hits the lexicon
    workloads = [
        ("everyday", 300, 400, 5, EVERYDAY),
        ("mixed", 300, 400, 5, mixed),
        ("dense", 300, 400, 5, SENTENCES),
        ("dense", 1_000, 200, 3, SENTENCES),
        ("dense", 10_000, 40, 2, SENTENCES),
        ("dense", 100_000, 6, 1, SENTENCES),
    ]
    for name, size, count, repeat, pool in workloads:
        texts = [make_text(size, rng, pool) for _ in range(count)]
        median, p99 = measure(texts, repeat)
        rows.append(
            {
                "workload": name,
                "chars": size,
                "scans": count * repeat,
                "median_us": round(median, 1),
                "p99_us": round(p99, 1),
                "median_us_per_1k_chars": round(median / (size / 1000), 1),
            }
        )
    print(f"safety.scan benchmark (policy {POLICY_VERSION})")
    print(f"{'workload':<9} {'chars':>8} {'scans':>6} {'median us':>10} {'p99 us':>10} {'us/1k chars':>12}")
    for r in rows:
        print(
            f"{r['workload']:<9} {r['chars']:>8} {r['scans']:>6} {r['median_us']:>10} "
            f"{r['p99_us']:>10} {r['median_us_per_1k_chars']:>12}"
        )
    out = ROOT / "bench" / "results" / "safety_scan.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"policy_version": POLICY_VERSION, "rows": rows}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
