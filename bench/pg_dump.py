"""pg_dump -Fc of the client suite's database: restricted against unrestricted.

Both logins have the same grants (tests/clients/common.py); one is restricted
with pysafe.restrict().  Each round dumps the database once as each login
(order alternating) to /dev/null, and the report gives the median times and
the median per-round ratio restricted / unrestricted (goal: at most 1.1).
pg_dump's statements (BEGIN ... READ ONLY, SET, LOCK ... IN ACCESS SHARE
MODE, COPY TO STDOUT) all take the shim's C fast path.

    python bench/pg_dump.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clusters import connection_options
from pysafe.install import install
from pysafe.localcluster import LocalCluster
from tests.clients.common import CLIENT_DB, READER, ROLES_SQL, SCHEMA_SQL, WRITER

GOAL = 1.1


def dump_seconds(cluster: LocalCluster, role: str) -> float:
    start = time.perf_counter()
    result = cluster.run_as_service_user(
        str(cluster.bindir / "pg_dump"),
        "-Fc",
        "--enable-row-security",
        "--no-sync",
        "-f",
        "/dev/null",
        *connection_options(cluster, role),
        CLIENT_DB,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump as {role} failed:\n{result.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    cluster = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        install(cluster.dsn(), cluster.pg_config)
        cluster.restart()
        with cluster.connect() as conn:
            conn.execute(ROLES_SQL)
            conn.execute(f"CREATE DATABASE {CLIENT_DB}")
        with cluster.connect(dbname=CLIENT_DB) as conn:
            conn.execute(SCHEMA_SQL)
        times: dict[str, list[float]] = {READER.name: [], WRITER.name: []}
        for role in (READER.name, WRITER.name):  # warm-up
            dump_seconds(cluster, role)
        for round_number in range(args.rounds):
            order = [READER.name, WRITER.name]
            for role in order if round_number % 2 == 0 else reversed(order):
                times[role].append(dump_seconds(cluster, role))
        ratio = statistics.median(
            r / w for r, w in zip(times[READER.name], times[WRITER.name], strict=True)
        )
        late = ratio > GOAL
        print(
            f"pg_dump -Fc of {CLIENT_DB}: restricted "
            f"{statistics.median(times[READER.name]) * 1000:.0f} ms, unrestricted "
            f"{statistics.median(times[WRITER.name]) * 1000:.0f} ms, ratio {ratio:.3f} "
            f"(goal <= {GOAL}) {'MISSED' if late else 'ok'}"
        )
        return 1 if late else 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main())
