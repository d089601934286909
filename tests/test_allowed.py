"""Everything SafeSession allows keeps working for a restricted role."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from tests.support import PARALLEL_PLANS, Server, attempt_on, run_psql

ALLOWED: list[tuple[str, tuple[str, ...]]] = [
    ("select", ("SELECT * FROM accounts",)),
    ("select_view", ("SELECT * FROM rich",)),
    ("join_aggregate", ("SELECT count(*), sum(a.balance) FROM accounts a JOIN rich r USING (id)",)),
    ("builtin_functions", ("SELECT now(), random(), md5('x'), pg_backend_pid()",)),
    ("stable_c_function", ("SELECT c_stable()",)),
    ("cleared_untrusted_function", ("SELECT py_cleared()",)),
    ("explain", ("EXPLAIN SELECT * FROM accounts",)),
    ("explain_analyze_select", ("EXPLAIN ANALYZE SELECT * FROM accounts",)),
    (
        "transaction_control",
        ("BEGIN", "SAVEPOINT a", "SELECT 1", "RELEASE a", "SAVEPOINT b", "ROLLBACK TO b", "COMMIT"),
    ),
    ("begin_read_only", ("BEGIN READ ONLY", "SELECT 1", "ROLLBACK")),
    (
        "set_transaction_isolation",
        (
            "BEGIN",
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "SET TRANSACTION READ ONLY",
            "COMMIT",
        ),
    ),
    ("set_show", ("SET work_mem = '8MB'", "SHOW work_mem", "RESET work_mem", "SHOW ALL")),
    (
        "set_read_only_on",
        ("SET default_transaction_read_only = on", "SET transaction_read_only = true"),
    ),
    ("set_search_path", ("SET search_path = public", "SET LOCAL statement_timeout = 1000")),
    ("set_role", ("SET ROLE can_write", "RESET ROLE")),
    ("reset_all_discard", ("RESET ALL", "DISCARD ALL", "DISCARD PLANS")),
    ("listen_notify", ("LISTEN chan", "NOTIFY chan, 'hi'", "UNLISTEN chan")),
    (
        "set_constraints",
        ("BEGIN", "SET CONSTRAINTS ALL DEFERRED", "SET CONSTRAINTS ALL IMMEDIATE", "COMMIT"),
    ),
    (
        "cursors",
        (
            "BEGIN",
            "DECLARE c CURSOR FOR SELECT * FROM accounts",
            "FETCH 2 FROM c",
            "MOVE 1 IN c",
            "CLOSE c",
            "COMMIT",
        ),
    ),
    (
        "cursor_with_hold",
        ("DECLARE h CURSOR WITH HOLD FOR SELECT * FROM accounts", "FETCH ALL FROM h", "CLOSE h"),
    ),
    (
        "prepare_execute",
        ("PREPARE q AS SELECT * FROM accounts WHERE id = $1", "EXECUTE q(1)", "DEALLOCATE q"),
    ),
    ("do_read_only", ("DO $$DECLARE n int; BEGIN SELECT count(*) INTO n FROM accounts; END$$",)),
    ("call_read_only", ("CALL read_only_proc(NULL)",)),
    ("copy_to_stdout", ("COPY accounts TO STDOUT",)),
    ("copy_query_to_stdout", ("COPY (SELECT * FROM rich) TO STDOUT",)),
    (
        "lock_share",
        (
            "BEGIN",
            "LOCK accounts IN ACCESS SHARE MODE",
            "LOCK accounts IN ROW SHARE MODE",
            "COMMIT",
        ),
    ),
]


@pytest.mark.parametrize("statements", [c[1] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_allowed_for_restricted_role(server: Server, statements: tuple[str, ...]) -> None:
    server.assert_allowed("reporting", *statements)


def test_transaction_is_read_only_in_a_restricted_session(server: Server) -> None:
    with server.connect("reporting") as conn:
        attempt_on(conn, "SELECT 1")
        row = conn.execute("SHOW transaction_read_only").fetchone()
    assert row == ("on",)


def test_extended_protocol_reads_and_writes(server: Server) -> None:
    """psycopg sends parameters with the extended protocol (Parse/Bind/Execute)."""
    with server.connect("reporting") as conn:
        row = conn.execute("SELECT balance FROM accounts WHERE id = %s", [2]).fetchone()
        assert row == (20,)
        row = conn.execute(
            "SELECT balance FROM accounts WHERE id = %s", [3], prepare=True
        ).fetchone()
        assert row == (30,)
    before = server.fingerprint()
    with (
        server.connect("reporting") as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO accounts VALUES (%s, %s)", [80, 1], prepare=True)
    assert server.fingerprint() == before


def test_parallel_query_plans_work(server: Server) -> None:
    """Parallel workers run under the leader's checks; reads through them work."""
    force = "debug_parallel_query" if server.cluster.major >= 16 else "force_parallel_mode"
    setup = (f"SET {force} = on", *PARALLEL_PLANS)
    with server.connect("reporting") as conn:
        assert attempt_on(conn, *setup) is None
        plan = "\n".join(
            str(row[0]) for row in conn.execute("EXPLAIN SELECT count(*) FROM accounts")
        )
        assert "Gather" in plan
        row = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT sum(balance) FROM accounts"
        ).fetchone()
        assert row is not None
        launched = re.findall(r"'Workers Launched': (\d+)", str(row[0]))
        assert launched and int(launched[0]) > 0, row
        assert conn.execute("SELECT sum(balance) FROM accounts").fetchone() == (150,)


@pytest.fixture
def partitioned(server: Server) -> Iterator[None]:
    server.admin(
        "CREATE TABLE parted (id int) PARTITION BY RANGE (id);"
        "CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);"
        "GRANT SELECT ON parted, parted_1 TO can_write; GRANT pg_read_all_stats TO reporting"
    )
    yield
    server.admin("DROP TABLE parted; REVOKE pg_read_all_stats FROM reporting")


@pytest.mark.usefixtures("partitioned")
def test_every_system_view_reads(server: Server) -> None:
    """Every view of pg_catalog and information_schema, with pg_read_all_stats: no refusal."""
    views = server.admin(
        "SELECT format('%I.%I', schemaname, viewname) FROM pg_views"
        " WHERE schemaname IN ('pg_catalog', 'information_schema') ORDER BY 1"
    )
    assert len(views) > 100
    refused = []
    with server.connect("reporting") as conn:
        for (view,) in views:
            refusal = attempt_on(conn, f"SELECT * FROM {view} LIMIT 1")
            if refusal is not None and refusal.sqlstate == "25006":
                refused.append((view, refusal.message))
    assert refused == []


@pytest.mark.usefixtures("partitioned")
def test_psql_describes_partitioned_tables(server: Server) -> None:
    """psql's \\d, \\d+ and \\dP+ call pg_partition_ancestors() and pg_partition_tree()."""
    for command in ("\\d parted", "\\d+ parted_1", "\\dP+", "\\dPn+"):
        result = run_psql(server.cluster, server.cluster.dsn("reporting"), "-c", command)
        assert result.returncode == 0 and "ERROR" not in result.stderr, (command, result.stderr)
