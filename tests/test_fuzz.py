"""Write-oracle fuzzing: sqlsmith as a restricted role must change nothing.

sqlsmith (Debian package) sends random statements, DML among them, and rolls
each one back.  So the oracle looks at what even a rolled-back write leaves:
per-table write counters (n_tup_ins/upd/del count aborted rows too),
sequence positions (not transactional), and the data and catalog fingerprint.
The server log must show no crashed backend.  A control run as the
unrestricted role with the same privileges must move the counters, so the
oracle can fail.

PYSAFE_FUZZ_QUERIES sets the run length (CI default 1500); the long runs
recorded in docs/fuzzing.md use 100000.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support import FINGERPRINT_FUNCTION, Server

FUZZ_DB = "fuzz"
QUERIES = int(os.environ.get("PYSAFE_FUZZ_QUERIES", "1500"))
SEED = int(os.environ.get("PYSAFE_FUZZ_SEED", "42"))

OBJECTS = """
CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric, placed date,
                     tags text[], meta jsonb);
INSERT INTO orders SELECT g, 'c' || (g % 7), g * 1.5, date '2026-01-01' + g, ARRAY['a', 'b'],
                          jsonb_build_object('k', g) FROM generate_series(1, 200) g;
CREATE TABLE customers (name text PRIMARY KEY, since timestamptz DEFAULT now(), vip boolean);
INSERT INTO customers SELECT 'c' || g, now(), g % 2 = 0 FROM generate_series(0, 6) g;
CREATE TABLE events (at timestamptz, kind text) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events SELECT timestamptz '2026-02-01' + g * interval '1 day', 'k' || g
  FROM generate_series(1, 100) g;
CREATE SEQUENCE invoice_seq;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
CREATE MATERIALIZED VIEW order_totals AS SELECT customer, sum(amount) FROM orders GROUP BY 1;
SELECT lo_from_bytea(0, 'large object');
GRANT ALL ON ALL TABLES IN SCHEMA public TO can_write;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO can_write;
ALTER TABLE orders OWNER TO can_write;
ALTER ROLE reporting IN DATABASE fuzz SET statement_timeout = '2s';
ALTER ROLE writer IN DATABASE fuzz SET statement_timeout = '2s';
"""

WRITE_COUNTERS = """
SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint
  FROM pg_stat_user_tables
"""
SEQUENCES = "SELECT last_value || ':' || is_called FROM invoice_seq"

pytestmark = pytest.mark.skipif(shutil.which("sqlsmith") is None, reason="needs sqlsmith")


@pytest.fixture(scope="module")
def fuzz_db(server: Server) -> Iterator[str]:
    server.admin(f"CREATE DATABASE {FUZZ_DB}")
    server.admin(OBJECTS, dbname=FUZZ_DB)
    server.admin(FINGERPRINT_FUNCTION, dbname=FUZZ_DB)
    yield FUZZ_DB
    server.admin(f"DROP DATABASE {FUZZ_DB} WITH (FORCE)")


def write_marks(server: Server) -> tuple[str, int, str]:
    """Fingerprint, write counters, sequence position, once stats have settled."""
    with server.connect(dbname=FUZZ_DB) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        counters = conn.execute(WRITE_COUNTERS).fetchone()
        sequence = conn.execute(SEQUENCES).fetchone()
    assert counters is not None and sequence is not None
    return server.fingerprint(FUZZ_DB), int(counters[0]), str(sequence[0])


def run_sqlsmith(server: Server, user: str, queries: int) -> subprocess.CompletedProcess[str]:
    dsn = server.cluster.dsn(user=user, dbname=FUZZ_DB)
    return subprocess.run(
        [
            "sqlsmith",
            f"--target={dsn}",
            f"--max-queries={queries}",
            f"--seed={SEED}",
            "--exclude-catalog",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def settled_marks(server: Server) -> tuple[str, int, str]:
    """Backends flush their statistics when they exit; give that a moment."""
    time.sleep(1.5)
    return write_marks(server)


def test_sqlsmith_as_restricted_role_writes_nothing(server: Server, fuzz_db: str) -> None:
    log_start = server.cluster.log_path.stat().st_size
    before = settled_marks(server)
    result = run_sqlsmith(server, "reporting", QUERIES)
    assert result.returncode == 0, result.stderr[-2000:]
    after = settled_marks(server)
    assert after == before, f"sqlsmith as a restricted role left a trace: {before} -> {after}"
    with open(server.cluster.log_path, errors="replace") as log:
        log.seek(log_start)
        new_log = log.read()
    for sign in ("terminated by signal", "PANIC", "server process (PID"):
        assert sign not in new_log, new_log[-3000:]
    # The run did try to write: pysafe's refusals are in the log.
    assert "in a read-only session" in new_log


def test_control_the_oracle_sees_writes_of_an_unrestricted_role(
    server: Server, fuzz_db: str
) -> None:
    before = settled_marks(server)
    run_sqlsmith(server, "writer", min(QUERIES, 1500))
    after = settled_marks(server)
    assert after[1] > before[1], "sqlsmith's writes left no mark: the oracle could not fail"
