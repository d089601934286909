"""Huge statements of a restricted role: time, backend memory, and cancels.

BI tools send EXPLAIN ANALYZE with hundreds of thousands of constants.  This
runs a 2.3 MB ``EXPLAIN ANALYZE SELECT ... IN (400k constants)`` as the
restricted role on a bare cluster and a pysafe cluster, in paired rounds,
and reports the median time of each and the ratio (goal: at most 2x bare),
and the backends' resident memory before and after (goal: pysafe's grows
no more than 20 MB beyond what a bare backend's does).  Then it sends a
statement that only the Python policy decides (a CREATE TABLE AS, which it
refuses) just under the 256 kB the policy reads at most, cancels it while
the policy parses it, and reports how long the statement took to end after
the cancel and its SQLSTATE (goal: 57014 within 500 ms: a cancelled decision
waits for the rest of its parse, so that nothing of it stays in the backend).

    python bench/huge_statements.py [--rounds N] [--constants N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clusters import RESTRICTED_ROLE, prepare
from pysafe.localcluster import LocalCluster

TIME_GOAL = 2.0
MEMORY_GOAL_MB = 20.0  # growth of the backend's resident memory beyond a bare backend's
CANCEL_AFTER_SECONDS = 0.05  # the policy parses the 230 kB statement for about 0.2 s
CANCEL_CONSTANTS = 36_000  # just under the 256 kB the policy reads at most
CANCEL_GOAL_MS = 500.0


def in_list(constants: int) -> str:
    return ", ".join(str(n) for n in range(constants))


def resident_mb(conn: psycopg.Connection) -> float:
    """The backend's resident memory (VmRSS), read from /proc as the same host."""
    pid = conn.info.backend_pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for backend {pid}")


def timed(conn: psycopg.Connection, sql: str) -> float:
    start = time.perf_counter()
    conn.execute(sql).fetchall()
    return time.perf_counter() - start


def explain_rounds(bare: LocalCluster, safe: LocalCluster, sql: str, rounds: int) -> bool:
    with bare.connect(RESTRICTED_ROLE) as bare_conn, safe.connect(RESTRICTED_ROLE) as safe_conn:
        baseline, bare_baseline = resident_mb(safe_conn), resident_mb(bare_conn)
        times: dict[int, list[float]] = {id(bare_conn): [], id(safe_conn): []}
        for round_number in range(rounds):
            pair = [bare_conn, safe_conn] if round_number % 2 == 0 else [safe_conn, bare_conn]
            for conn in pair:
                times[id(conn)].append(timed(conn, sql))
        after, bare_after = resident_mb(safe_conn), resident_mb(bare_conn)
    bare_s = statistics.median(times[id(bare_conn)])
    safe_s = statistics.median(times[id(safe_conn)])
    ratio = statistics.median(
        s / b for s, b in zip(times[id(safe_conn)], times[id(bare_conn)], strict=True)
    )
    late = ratio > TIME_GOAL
    grown = (after - baseline) - (bare_after - bare_baseline) > MEMORY_GOAL_MB
    print(
        f"EXPLAIN ANALYZE, {len(sql) / 1e6:.1f} MB: bare {bare_s * 1000:.0f} ms, "
        f"pysafe {safe_s * 1000:.0f} ms, ratio {ratio:.2f} (goal <= {TIME_GOAL}) "
        f"{'MISSED' if late else 'ok'}"
    )
    print(
        f"backend memory: pysafe {baseline:.0f} -> {after:.0f} MB, bare "
        f"{bare_baseline:.0f} -> {bare_after:.0f} MB (goal: pysafe grows at most "
        f"{MEMORY_GOAL_MB:.0f} MB more than bare) {'MISSED' if grown else 'ok'}"
    )
    return late or grown


def cancel_latency(safe: LocalCluster, constants: int) -> bool:
    """A cancel sent while the policy parses: how long until the statement ends."""
    sql = f"CREATE TABLE huge AS SELECT 1 AS a WHERE 1 IN ({in_list(constants)})"
    outcome: dict[str, object] = {}
    with safe.connect(RESTRICTED_ROLE) as conn, safe.connect() as admin:
        conn.execute("DO $d$BEGIN END$d$")  # Python and pglast loaded beforehand
        baseline = resident_mb(conn)
        pid = conn.info.backend_pid

        def run() -> None:
            try:
                conn.execute(sql)
            except psycopg.Error as error:
                outcome["sqlstate"] = error.diag.sqlstate
            outcome["ended"] = time.perf_counter()

        worker = threading.Thread(target=run)
        worker.start()
        while not admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'", [pid]
        ).fetchall():
            time.sleep(0.002)
        time.sleep(CANCEL_AFTER_SECONDS)  # the server parsed it; the policy is parsing
        in_policy = worker.is_alive()
        cancelled = time.perf_counter()
        admin.execute("SELECT pg_cancel_backend(%s)", [pid])
        worker.join()
        after = resident_mb(conn)
    latency_ms = (float(outcome["ended"]) - cancelled) * 1000  # type: ignore[arg-type]
    sqlstate = outcome.get("sqlstate")
    missed = not in_policy or sqlstate != "57014" or latency_ms > CANCEL_GOAL_MS
    print(
        f"cancel {CANCEL_AFTER_SECONDS * 1000:.0f} ms into the policy's parse of "
        f"{len(sql) / 1e3:.0f} kB: {sqlstate} {latency_ms:.0f} ms after the cancel "
        f"(goal: 57014 within {CANCEL_GOAL_MS:.0f} ms) {'MISSED' if missed else 'ok'}; "
        f"backend memory {baseline:.0f} -> {after:.0f} MB"
    )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--constants", type=int, default=400_000)
    args = parser.parse_args()
    sql = f"EXPLAIN ANALYZE SELECT 1 WHERE 1 IN ({in_list(args.constants)})"
    bare = LocalCluster(settings={"autovacuum": "off"}).start()
    safe = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        prepare(bare, with_pysafe=False)
        prepare(safe, with_pysafe=True)
        missed = explain_rounds(bare, safe, sql, args.rounds)
        missed |= cancel_latency(safe, CANCEL_CONSTANTS)
        return 1 if missed else 0
    finally:
        bare.stop()
        safe.stop()


if __name__ == "__main__":
    raise SystemExit(main())
