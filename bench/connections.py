"""Connection cost of pysafe: pgbench -C (connect, SELECT 1, disconnect).

Starts a bare cluster and a pysafe cluster side by side.  For an
unrestricted and a restricted role, runs pgbench in paired rounds (order
alternating) and prints the median transactions per second and the median
per-round cost ratio bare_tps / pysafe_tps (1.05 = connections cost 5% more).

    python bench/connections.py [--rounds N] [--seconds S]

PYSAFE_PG_BINDIR picks the PostgreSQL binaries (login triggers need 17+).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clusters import pgbench_tps, prepare
from pysafe.localcluster import LocalCluster


@dataclass(frozen=True)
class Case:
    role: str
    goal: float


CASES = [Case("app_user", 1.05), Case("reporting", 1.10)]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--control", action="store_true", help="noise floor: two bare clusters")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write("SELECT 1;\n")
    os.chmod(handle.name, 0o644)
    bare = LocalCluster(settings={"autovacuum": "off"}).start()
    safe = LocalCluster(settings={"autovacuum": "off"}).start()
    missed = False
    try:
        prepare(bare, with_pysafe=False)
        prepare(safe, with_pysafe=not args.control)
        print(f"PostgreSQL {safe.major}, pgbench -C, {args.seconds}s x {args.rounds} rounds")
        print(f"{'role':<12} {'bare tps':>9} {'pysafe tps':>11} {'cost':>7} {'goal':>6}")
        for case in CASES:
            bare_tps: list[float] = []
            safe_tps: list[float] = []
            for round_number in range(args.rounds):
                pair = [(bare, bare_tps), (safe, safe_tps)]
                for cluster, results in pair if round_number % 2 == 0 else reversed(pair):
                    results.append(pgbench_tps(cluster, case.role, handle.name, args.seconds, "-C"))
            cost = statistics.median(b / s for b, s in zip(bare_tps, safe_tps, strict=True))
            case_missed = cost > case.goal
            missed |= case_missed
            print(
                f"{case.role:<12} {statistics.median(bare_tps):9.0f} "
                f"{statistics.median(safe_tps):11.0f} {cost:6.3f}x {case.goal:5.2f}x "
                f"{'MISSED' if case_missed else 'ok'}"
            )
    finally:
        bare.stop()
        safe.stop()
        os.unlink(handle.name)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
