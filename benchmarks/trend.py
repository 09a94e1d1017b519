"""Trend direction and time to breach under autocorrelated day-to-day wobble.

Simulated accuracy histories, one point a day: each batch has ``n ~ U{1,000..5,000}`` rows, so
its value carries the binomial sampling noise of accuracy (SE 0.4-0.95 points at p = 0.9),
plus a stationary AR(1) wobble with correlation ``phi`` one day apart and standard deviation
``--wobble`` (0.004 = 0.4 accuracy points by default, about the sampling SE of a 5,000-row
batch). ``analyze_trend`` gets each batch's estimated sampling variance ``acc (1 - acc) / n``,
as the tracker stores it, and its defaults (``tolerance=0.01`` relative per 30 days,
``alpha=0.05``).

Columns, for phi in {0, 0.5, 0.8} and 30 / 42 / 84 points:

* ``false dir``: flat histories (p = 0.9) called "degrading" or "improving" (goal <= 12 %;
  the rule is two-sided at nominal 10 %);
* ``naive deg``: flat histories called "degrading" by the sign of an ``np.polyfit`` slope
  (the seed's rule);
* ``detect``: histories declining 0.5 % (relative) per week called "degrading" (goal >= 90 %
  at 42 points);
* ``ttb cover``: coverage of the 95 % time-to-breach interval on those declining histories,
  the threshold placed where the true line crosses 30 days after the last point (goal
  >= 90 %); among histories called degrading with a bounded interval (``ttb n``); an
  unbounded interval is counted in ``ttb unb`` and not as covering;
* ``ms/call``: mean wall time of one ``analyze_trend`` call (shared machine: compare ratios).

Run ``python benchmarks/trend.py`` (1,000 histories a cell) or ``--quick`` (200); one cell
with more histories: ``--cells 0.8:30 --reps 5000``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from perfkit.analysis import analyze_trend, naive_trend_direction

P0 = 0.9
DECLINE_PER_WEEK = -0.005  # relative
BREACH_AFTER_DAYS = 30.0


def simulate(
    rng: np.random.Generator, t: int, phi: float, wobble: float, rel_per_week: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days, accuracies and their estimated sampling variances of one history."""
    n = rng.integers(1000, 5001, size=t)
    days = np.arange(t, dtype=float)
    u = np.empty(t)
    u[0] = rng.normal(0.0, wobble)
    innov = rng.normal(0.0, wobble * math.sqrt(1.0 - phi * phi), size=t)
    for i in range(1, t):
        u[i] = phi * u[i - 1] + innov[i]
    p = P0 * (1.0 + rel_per_week / 7.0 * days) + u
    acc = rng.binomial(n, np.clip(p, 0.0, 1.0)) / n
    return days, acc, acc * (1.0 - acc) / n


def run_cell(phi: float, t: int, reps: int, wobble: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    false_dir = naive = detect = covered = bounded = unbounded = 0
    slope = P0 * DECLINE_PER_WEEK / 7.0
    cross_day = (t - 1) + BREACH_AFTER_DAYS
    threshold = P0 + slope * cross_day
    calls, elapsed = 0, 0.0
    for _ in range(reps):
        d, a, v = simulate(rng, t, phi, wobble)
        t0 = time.perf_counter()
        res = analyze_trend(d, a, v, higher_is_better=True)
        elapsed += time.perf_counter() - t0
        calls += 1
        false_dir += res.direction in ("degrading", "improving")
        naive += naive_trend_direction(d, a) == "degrading"
        d, a, v = simulate(rng, t, phi, wobble, DECLINE_PER_WEEK)
        t0 = time.perf_counter()
        res = analyze_trend(d, a, v, higher_is_better=True, threshold=threshold)
        elapsed += time.perf_counter() - t0
        calls += 1
        detect += res.direction == "degrading"
        if res.time_to_breach_ci is not None:
            lo, hi = res.time_to_breach_ci
            if lo is None or hi is None:
                unbounded += 1
            else:
                bounded += 1
                covered += lo <= BREACH_AFTER_DAYS <= hi
    return {
        "false_dir": false_dir / reps,
        "naive": naive / reps,
        "detect": detect / reps,
        "ttb_cover": covered / bounded if bounded else math.nan,
        "ttb_n": bounded,
        "ttb_unb": unbounded,
        "ms": 1000.0 * elapsed / calls,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 histories a cell")
    parser.add_argument("--reps", type=int, default=None, help="histories a cell")
    parser.add_argument("--wobble", type=float, default=0.004, help="sd of the AR(1) wobble")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--cells", nargs="*", default=None, metavar="PHI:POINTS",
                        help="only these cells (e.g. 0.8:30), same seeds as in the full table")
    args = parser.parse_args(argv)
    reps = args.reps or (200 if args.quick else 1000)
    analyze_trend(np.arange(20.0), np.linspace(0.9, 0.8, 20), higher_is_better=True)  # compile
    print(
        f"trend benchmark: {reps} histories a cell, wobble sd {args.wobble}, "
        f"decline {DECLINE_PER_WEEK:+.1%}/week, breach {BREACH_AFTER_DAYS:g} days ahead"
    )
    header = (
        f"{'phi':>4} {'points':>6} | {'false dir':>9} {'naive deg':>9} | {'detect':>6} | "
        f"{'ttb cover':>9} {'ttb n':>5} {'ttb unb':>7} | {'ms/call':>7}"
    )
    print(header)
    print("-" * len(header))
    wanted = None if args.cells is None else {(float(c.split(":")[0]), int(c.split(":")[1])) for c in args.cells}
    for i, phi in enumerate((0.0, 0.5, 0.8)):
        for j, t in enumerate((30, 42, 84)):
            if wanted is not None and (phi, t) not in wanted:
                continue
            r = run_cell(phi, t, reps, args.wobble, args.seed + 10 * i + j)
            print(
                f"{phi:>4.1f} {t:>6d} | {r['false_dir']:>9.1%} {r['naive']:>9.1%} | "
                f"{r['detect']:>6.1%} | {r['ttb_cover']:>9.1%} {r['ttb_n']:>5d} "
                f"{r['ttb_unb']:>7d} | {r['ms']:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
