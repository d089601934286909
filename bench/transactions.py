"""Everyday transactions of a restricted role: pysafe against a bare cluster.

Drivers wrap reads in statements of their own every transaction: psycopg's
``read_only``, pgjdbc's ``readOnly``, SQLAlchemy's isolation levels and
pg_dump send ``BEGIN ISOLATION LEVEL ... READ ONLY`` or ``SET TRANSACTION``.
This runs such a pgbench script (extended protocol, 2 clients) as the
restricted role on a bare cluster and a pysafe cluster, in paired rounds
(order alternating), and prints the median tps of each and the median
per-round ratio pysafe_tps / bare_tps (goal: at least 0.95).

    python bench/transactions.py [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clusters import RESTRICTED_ROLE, pgbench_tps, prepare
from pysafe.localcluster import LocalCluster

GOAL = 0.95
SCRIPTS = {
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY": (
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
        "SELECT count(*) FROM bench_data WHERE id < 10;\n"
        "COMMIT;\n"
    ),
    "BEGIN; SET TRANSACTION READ ONLY": (
        "BEGIN;\n"
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
        "SELECT count(*) FROM bench_data WHERE id < 10;\n"
        "COMMIT;\n"
    ),
}
DATA = """
CREATE TABLE bench_data AS SELECT g AS id FROM generate_series(1, 1000) g;
CREATE INDEX ON bench_data (id);
GRANT SELECT ON bench_data TO {role};
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    bare = LocalCluster(settings={"autovacuum": "off"}).start()
    safe = LocalCluster(settings={"autovacuum": "off"}).start()
    missed = False
    scripts = []
    try:
        for cluster, with_pysafe in ((bare, False), (safe, True)):
            prepare(cluster, with_pysafe)
            with cluster.connect() as conn:
                conn.execute(DATA.format(role=RESTRICTED_ROLE))
        print(
            f"PostgreSQL {safe.major}, pgbench -M extended -c 2 -j 2, "
            f"{args.seconds}s x {args.rounds} rounds, role {RESTRICTED_ROLE}"
        )
        print(f"{'script':<52} {'bare tps':>9} {'pysafe tps':>11} {'ratio':>7} {'goal':>6}")
        for name, text in SCRIPTS.items():
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
                handle.write(text)
            os.chmod(handle.name, 0o644)
            scripts.append(handle.name)
            options = ("-M", "extended", "-c", "2", "-j", "2")
            bare_tps: list[float] = []
            safe_tps: list[float] = []
            for round_number in range(args.rounds):
                pair = [(bare, bare_tps), (safe, safe_tps)]
                for cluster, results in pair if round_number % 2 == 0 else reversed(pair):
                    results.append(
                        pgbench_tps(cluster, RESTRICTED_ROLE, handle.name, args.seconds, *options)
                    )
            ratio = statistics.median(s / b for b, s in zip(bare_tps, safe_tps, strict=True))
            case_missed = ratio < GOAL
            missed |= case_missed
            print(
                f"{name:<52} {statistics.median(bare_tps):9.0f} "
                f"{statistics.median(safe_tps):11.0f} {ratio:6.3f}x {GOAL:5.2f}x "
                f"{'MISSED' if case_missed else 'ok'}"
            )
    finally:
        bare.stop()
        safe.stop()
        for script in scripts:
            os.unlink(script)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
