"""Refusal counts: pysafe.refusals, kept in shared memory by the shim, and status.

Counts are compared before and after, by (database, role, rule): other
tests of the session refuse things too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support import (
    FINGERPRINT_FUNCTION,
    PARALLEL_PLANS,
    READ_ONLY_SQLSTATE,
    REPO,
    Server,
    attempt_on,
    run_cli,
    run_psql,
    writes_as_unrestricted,
)

Key = tuple[str | None, str | None, str]

OTHER_DB = "refusal_counts_db"
PARALLEL_FIXTURE = """
CREATE TABLE refusal_par AS SELECT g AS id FROM generate_series(1, 20000) g;
GRANT SELECT ON refusal_par TO can_write;
-- The leader binds the trusted wrapper; each process running the scan binds
-- lo_create, all at once: after a pause to the same half second, so that
-- several processes of the query refuse it.
CREATE FUNCTION refusal_par_lo(id int) RETURNS oid
  LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
  BEGIN
    PERFORM pg_sleep(1.0 - mod(extract(epoch FROM clock_timestamp())::numeric, 0.5));
    RETURN lo_create(0);
  END$$;
GRANT EXECUTE ON FUNCTION refusal_par_lo(int) TO PUBLIC;
ANALYZE refusal_par;
"""
LOG_PREFIX = "pysafe refusal: "


def counts(server: Server) -> dict[Key, int]:
    """pysafe.refusals, read by a superuser; rows of dropped roles (no name) added up."""
    found: dict[Key, int] = {}
    with server.connect() as conn:
        rows = conn.execute("SELECT database, role, rule, refusals FROM pysafe.refusals")
        for database, role, rule, refusals in rows:
            key = (database, role, rule)
            found[key] = found.get(key, 0) + refusals
    return found


def increase(before: dict[Key, int], after: dict[Key, int]) -> dict[Key, int]:
    """The keys whose count changed, and by how much."""
    return {
        key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)
    }


def refused(conn: psycopg.Connection, statement: str) -> None:
    refusal = attempt_on(conn, statement)
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (statement, refusal)


def test_each_refusal_counts_once_under_its_database_role_and_rule(server: Server) -> None:
    paths = [
        ("reporting", "INSERT INTO accounts VALUES (90, 1)", "dml"),
        ("reporting", "WITH d AS (DELETE FROM accounts RETURNING 1) SELECT 1", "modifying_cte"),
        ("reporting", "CREATE TABLE refusal_probe (x int)", "utility"),
        ("reporting", "SELECT c_volatile()", "c_functions"),
        ("reporting", "SELECT lo_create(0)", "builtin_functions"),
        ("reporting", "SET pysafe.block_dml = off", "pysafe_settings"),
        # A setting guard (check hook), reached through set_config().
        ("reporting_with_power", "SELECT set_config('role', 'power', false)", "protected_settings"),
        # A member of a listed role counts under its own name, as the session user.
        ("analyst", "INSERT INTO accounts VALUES (91, 1)", "dml"),
    ]
    expected: dict[Key, int] = {}
    before = counts(server)
    for user, statement, rule in paths:
        server.assert_refused(user, statement)  # 25006, and nothing written
        key = ("postgres", user, rule)
        expected[key] = expected.get(key, 0) + 1
    assert increase(before, counts(server)) == expected
    # The same statements write for an unrestricted role of the same grants, uncounted.
    before = counts(server)
    writes_as_unrestricted(server, *(statement for user, statement, _ in paths[:5]))
    assert increase(before, counts(server)) == {}


def test_the_count_keeps_its_last_refusal_time(server: Server) -> None:
    server.assert_refused("reporting", "UPDATE accounts SET balance = 0")
    [(last, now)] = server.admin(
        "SELECT last_refusal, now() FROM pysafe.refusals"
        " WHERE database = 'postgres' AND role = 'reporting' AND rule = 'dml'"
    )
    assert 0 <= (now - last).total_seconds() < 60  # type: ignore[operator]


def test_reads_and_superuser_writes_count_nothing(server: Server) -> None:
    before = counts(server)
    server.assert_allowed(
        "reporting",
        "SELECT * FROM accounts",
        "SELECT * FROM rich",
        "SET work_mem = '8MB'",
        "EXPLAIN SELECT * FROM accounts",
        "SELECT c_stable()",
    )
    with server.connect("postgres") as conn:
        conn.autocommit = False
        conn.execute("INSERT INTO accounts VALUES (93, 1)")
        conn.rollback()
    assert increase(before, counts(server)) == {}


@pytest.fixture
def other_database(server: Server) -> Iterator[str]:
    server.admin(f"CREATE DATABASE {OTHER_DB}")
    server.admin("CREATE TABLE t (x int); GRANT ALL ON t TO can_write", dbname=OTHER_DB)
    server.admin(FINGERPRINT_FUNCTION, dbname=OTHER_DB)
    yield OTHER_DB
    server.admin(f"DROP DATABASE {OTHER_DB} WITH (FORCE)")


def test_counts_span_databases_and_sessions(server: Server, other_database: str) -> None:
    before = counts(server)
    for _ in range(2):  # two sessions in each database
        server.assert_refused("reporting", "INSERT INTO t VALUES (1)", dbname=other_database)
        server.assert_refused("reporting", "INSERT INTO accounts VALUES (94, 1)")
    server.assert_refused("Report Team", "DELETE FROM t", dbname=other_database)
    assert increase(before, counts(server)) == {
        (other_database, "reporting", "dml"): 2,
        ("postgres", "reporting", "dml"): 2,
        (other_database, "Report Team", "dml"): 1,
    }
    # Any database shows the whole server's counts.
    rows = server.admin(
        "SELECT refusals FROM pysafe.refusals WHERE database = 'postgres' AND role = 'reporting'"
        " AND rule = 'dml'",
        dbname=other_database,
    )
    assert rows == [(counts(server)[("postgres", "reporting", "dml")],)]


def test_refusals_caught_inside_a_function_each_count(server: Server) -> None:
    before = counts(server)
    with server.connect("reporting") as conn:
        conn.execute(
            """DO $$BEGIN
                 FOR i IN 1..3 LOOP
                   BEGIN INSERT INTO accounts VALUES (95, 1);
                   EXCEPTION WHEN read_only_sql_transaction THEN NULL; END;
                 END LOOP;
               END$$"""
        )
    assert increase(before, counts(server)) == {("postgres", "reporting", "dml"): 3}


@pytest.fixture(scope="module")
def parallel_objects(server: Server) -> Iterator[None]:
    server.admin(PARALLEL_FIXTURE)
    yield
    server.admin("DROP TABLE refusal_par; DROP FUNCTION refusal_par_lo(int)")


def refusal_log_lines(server: Server, marker: str, expected: int, wait: float) -> int:
    """How many refusal lines of the server log carry ``marker`` (waiting for ``expected``)."""
    deadline = time.monotonic() + wait
    while True:
        text = server.cluster.log_path.read_text(errors="replace")
        found = sum(1 for line in text.splitlines() if LOG_PREFIX in line and marker in line)
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.usefixtures("parallel_objects")
@pytest.mark.parametrize("leader_participation", ["on", "off"])
def test_a_parallel_query_counts_once(server: Server, leader_participation: str) -> None:
    settings = (*PARALLEL_PLANS, f"SET parallel_leader_participation = {leader_participation}")
    with server.connect() as conn:
        for setting in settings:
            conn.execute(setting)
        plan = [str(r[0]) for r in conn.execute("EXPLAIN SELECT count(*) FROM refusal_par")]
    assert any("Gather" in line for line in plan), plan
    processes = 0
    for attempt in range(10):
        marker = uuid.uuid4().hex[:12]
        before = counts(server)
        with server.connect("reporting") as conn:
            for setting in settings:
                conn.execute(setting)
            refused(conn, f"SELECT refusal_par_lo(id) /* {marker} */ FROM refusal_par")
        assert increase(before, counts(server)) == {
            ("postgres", "reporting", "builtin_functions"): 1
        }, attempt
        # Each process that refused wrote its log line; the count stays one.
        processes = max(processes, refusal_log_lines(server, marker, 2, 1.0))
        if processes > 1:
            break
    assert processes > 1, "no attempt was refused in more than one process"


def test_replication_connections_count(server: Server) -> None:
    server.admin("CREATE ROLE refusal_repl LOGIN REPLICATION IN ROLE reporting")
    try:
        before = counts(server)
        for mode in ("true", "database"):
            conninfo = server.cluster.dsn("refusal_repl", replication=mode)
            result = run_psql(server.cluster, conninfo, "-c", "IDENTIFY_SYSTEM")
            assert "cannot open replication connections" in result.stderr, result.stderr
        assert increase(before, counts(server)) == {
            (None, "refusal_repl", "replication"): 1,  # physical: no database
            ("postgres", "refusal_repl", "replication"): 1,
        }
    finally:
        server.admin("DROP ROLE refusal_repl")


def test_a_dropped_role_keeps_its_count_without_a_name(server: Server) -> None:
    server.admin("CREATE ROLE refusal_gone LOGIN IN ROLE reporting")
    server.assert_refused("refusal_gone", "INSERT INTO accounts VALUES (96, 1)")
    assert counts(server).get(("postgres", "refusal_gone", "dml")) == 1
    before = counts(server)
    server.admin("DROP ROLE refusal_gone")
    after = counts(server)
    assert ("postgres", "refusal_gone", "dml") not in after
    assert after.get(("postgres", None, "dml"), 0) == before.get(("postgres", None, "dml"), 0) + 1


@pytest.fixture
def monitor(server: Server) -> Iterator[str]:
    server.admin("CREATE ROLE refusal_monitor LOGIN IN ROLE pg_monitor, reporting")
    yield "refusal_monitor"
    server.admin("DROP ROLE refusal_monitor")


def error_of(server: Server, user: str, statement: str) -> str | None:
    refusal = server.attempt(user, statement)
    return None if refusal is None else refusal.sqlstate


def test_who_may_read_and_reset(server: Server, monitor: str) -> None:
    server.assert_refused("reporting", "INSERT INTO accounts VALUES (97, 1)")
    # pg_monitor reads, even in a restricted session (refusal_monitor is one).
    with server.connect(monitor) as conn:
        assert conn.execute("SELECT pysafe.session_is_restricted()").fetchone() == (True,)
        seen = conn.execute("SELECT sum(refusals) FROM pysafe.refusals").fetchone()
        direct = conn.execute("SELECT sum(refusals) FROM pysafe.refusals()").fetchone()
    assert seen == direct == (sum(counts(server).values()),)
    # Others do not.
    assert error_of(server, "writer", "SELECT * FROM pysafe.refusals") == "42501"
    assert error_of(server, "writer", "SELECT * FROM pysafe.refusals()") == "42501"
    # Only superusers reset.
    for user in ("writer", monitor, "reporting"):
        assert error_of(server, user, "SELECT pysafe.reset_refusals()") == "42501", user
    assert counts(server) != {}
    server.admin("SELECT pysafe.reset_refusals()")
    assert counts(server) == {}
    server.assert_refused("reporting", "INSERT INTO accounts VALUES (98, 1)")
    assert counts(server) == {("postgres", "reporting", "dml"): 1}


def test_the_objects_are_documented(server: Server) -> None:
    rows = server.admin(
        "SELECT obj, obj_description(oid, catalog) IS NOT NULL FROM ("
        " VALUES ('pysafe.refusals()'::regprocedure::oid, 'pg_proc', 'refusals()'),"
        "        ('pysafe.reset_refusals()'::regprocedure::oid, 'pg_proc', 'reset_refusals()'),"
        "        ('pysafe.refusals'::regclass::oid, 'pg_class', 'refusals view')"
        ") AS o(oid, catalog, obj)"
    )
    assert {str(r[0]): r[1] for r in rows} == {
        "refusals()": True,
        "reset_refusals()": True,
        "refusals view": True,
    }


def test_status_shows_the_counts(server: Server) -> None:
    server.assert_refused("reporting", "INSERT INTO accounts VALUES (99, 1)")
    expected = counts(server)
    result = run_cli("status", "--json", "--dsn", server.cluster.dsn())
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)["servers"]
    refusals = report["result"]["refusals"]
    assert refusals["counted"] is True
    assert refusals["total"] == sum(expected.values())
    shown: dict[Key, int] = {}
    for row in refusals["rows"]:
        key = (row["database"], row["role"], row["rule"])
        shown[key] = shown.get(key, 0) + row["refusals"]
    assert shown == expected
    text = run_cli("status", "--dsn", server.cluster.dsn())
    assert text.returncode == 0, text.stderr
    assert f"refusals since server start or reset: {sum(expected.values())}" in text.stdout
    top = max(expected.items(), key=lambda item: item[1])
    assert f"{top[1]:>8}  {top[0][2]}  (database {top[0][0]}, role {top[0][1]};" in text.stdout
    # A role that may not read them is told how to.
    other = run_cli("status", "--dsn", server.cluster.dsn(user="writer"))
    assert other.returncode == 0, other.stderr
    assert "refusals: not readable by this role" in other.stdout
    rows = {
        str(p): bool(live)
        for p, live, _ in server.admin("SELECT protection, live, detail FROM pysafe.status()")
    }
    assert rows["refusals counted"] is True


def exporter_query() -> str:
    """The postgres_exporter query of docs/operations.md ("Counting refusals")."""
    text = (REPO / "docs" / "operations.md").read_text()
    block = text.split("```yaml\npysafe:\n", 1)[1].split("```", 1)[0]
    lines = block.split("  query: |\n", 1)[1].splitlines()
    query = []
    for line in lines:
        if not line.startswith("    "):
            break
        query.append(line[4:])
    return "\n".join(query)


def test_the_documented_exporter_query_runs_as_a_monitoring_role(
    server: Server, monitor: str
) -> None:
    server.assert_refused("reporting", "INSERT INTO accounts VALUES (89, 1)")
    server.admin("CREATE ROLE refusal_dropped LOGIN IN ROLE reporting")
    server.assert_refused("refusal_dropped", "INSERT INTO accounts VALUES (88, 1)")
    server.admin("DROP ROLE refusal_dropped")
    with server.connect(monitor) as conn:
        cursor = conn.execute(exporter_query())
        rows = cursor.fetchall()
        columns = [column.name for column in cursor.description or ()]
    assert columns == ["database", "role", "rule", "refusals", "last_refusal_seconds"]
    labels = [row[:3] for row in rows]
    assert len(labels) == len(set(labels)), "a label set repeats"
    assert all(value is not None for label in labels for value in label)
    by_labels = {row[:3]: row[3] for row in rows}
    assert (
        by_labels[("postgres", "reporting", "dml")]
        == counts(server)[("postgres", "reporting", "dml")]
    )
    assert by_labels[("postgres", "", "dml")] >= 1


def test_a_locked_identity_counts_its_refusals_and_its_end(settings: Server) -> None:
    settings.set_settings(lock_session_authorization="on")
    before = counts(settings)
    with settings.connect("app_login") as conn:
        conn.execute("SET SESSION AUTHORIZATION analyst")
        refused(conn, "SELECT set_config('session_authorization', 'app_login', false)")
        refusal = attempt_on(conn, "SELECT set_config('session_authorization', NULL, false)")
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert conn.closed or conn.broken or attempt_on(conn, "SELECT 1") is not None
    # Both under the restricted identity; the superuser login is never restricted.
    assert increase(before, counts(settings)) == {
        ("postgres", "analyst", "protected_settings"): 1,
        ("postgres", "analyst", "locked_identity"): 1,
    }
