#!/usr/bin/env python3
"""What the step supervisor costs per step: starting `/usr/bin/true` directly (the
baseline), through the `pedigree-supervise` helper, and through `pedigree __supervise`
(the fallback when the helper is not installed), all in one invocation.

Each figure is the median over reps of the mean start-to-exit time of a batch of starts
(`time.perf_counter` around `subprocess.run`); ratios are against the direct start.
Standard library only. Build first: `cargo build --release`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def batch_ms(argv: list[str], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        r = subprocess.run(argv)
        if r.returncode != 0:
            sys.exit(f"{argv!r} exited {r.returncode}")
    return (time.perf_counter() - t) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", type=Path, default=REPO / "target" / "release")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--starts", type=int, default=200, help="starts per rep and way")
    args = ap.parse_args()
    me = str(os.getpid())
    tail = ["--parent", me, "--grace-ms", "3000", "--", "/usr/bin/true"]
    ways = {
        "direct": ["/usr/bin/true"],
        "pedigree-supervise": [str(args.bin_dir / "pedigree-supervise"), *tail],
        "pedigree __supervise": [str(args.bin_dir / "pedigree"), "__supervise", *tail],
    }
    for argv in ways.values():
        if not Path(argv[0]).is_file():
            sys.exit(f"{argv[0]} is missing: run `cargo build --release` first")
    times: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(args.reps):
        for w, argv in ways.items():  # interleaved, so load drifts hit every way alike
            times[w].append(batch_ms(argv, args.starts))
    base = statistics.median(times["direct"])
    print(f"supervisor cost: {args.reps} reps x {args.starts} starts, median ms per start")
    print(f"{'way':<24}{'median ms':>10}{'min':>8}{'max':>8}{'vs direct':>11}{'extra ms':>10}")
    for w, t in times.items():
        m = statistics.median(t)
        print(f"{w:<24}{m:>10.3f}{min(t):>8.3f}{max(t):>8.3f}{m / base:>10.2f}x{m - base:>10.3f}")


if __name__ == "__main__":
    main()
