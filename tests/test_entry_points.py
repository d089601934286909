"""Functions are judged by the code they run (issue 17, items 10 and 11), and a
plain EXPLAIN reads (issue 17, the function reads).

- A superuser's alias of a built-in writer (LANGUAGE internal, any name and
  volatility) or of a reviewed extension writer (LANGUAGE C, any volatility,
  any path to the library) is refused like the writer.
- A function in an untrusted language is refused whatever its volatility,
  unless a superuser cleared it (pysafe.clear_function(), a security label);
  pysafe's own keep working, and audit() and function_review() say which.
- A plain EXPLAIN of a query naming a refused volatile function describes
  it: nothing runs.  Whatever would run is still checked.

Each claim is tried as a restricted role through several roads, checked from
a superuser (XIDs, advisory locks, large objects, files, sequences), and run
as an unrestricted role, which succeeds.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import (
    FINGERPRINT_FUNCTION,
    READ_ONLY_SQLSTATE,
    WORKERS_ONLY,
    Refusal,
    Server,
    attempt_on,
)

DATABASE = "entry_points"
RESTRICTED = "reporting"
UNRESTRICTED = "writer"

FIXTURE = """
CREATE EXTENSION dblink;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE xids (x xid8);
INSERT INTO xids SELECT '1'::xid8 FROM generate_series(1, 10);
CREATE TABLE parted (k int, v text) PARTITION BY LIST (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
CREATE TABLE par_big AS SELECT g AS id FROM generate_series(1, 20000) g;
ANALYZE par_big;
CREATE SEQUENCE tickets;

-- Built-ins under other names (item 10), each declared not volatile.
CREATE FUNCTION current_txid() RETURNS xid8 LANGUAGE internal STABLE
  AS 'pg_current_xact_id';
CREATE FUNCTION immutable_txid() RETURNS xid8 LANGUAGE internal IMMUTABLE
  AS 'pg_current_xact_id';
CREATE FUNCTION take_lock(bigint) RETURNS void LANGUAGE internal STABLE STRICT
  AS 'pg_advisory_lock_int8';
CREATE FUNCTION stop_query(integer) RETURNS boolean LANGUAGE internal STABLE STRICT
  AS 'pg_cancel_backend';
CREATE FUNCTION lo_of(oid, bytea) RETURNS oid LANGUAGE internal STABLE STRICT
  AS 'be_lo_from_bytea';
-- An alias of a cleared built-in runs: the entry point decides, not the label.
CREATE FUNCTION my_random() RETURNS double precision LANGUAGE internal VOLATILE
  AS 'drandom';
-- An extension writer declared STABLE, by $libdir and by absolute path.
CREATE FUNCTION stable_reset() RETURNS void LANGUAGE C STABLE
  AS '$libdir/pg_stat_statements', 'pg_stat_statements_reset';
CREATE FUNCTION stable_reset_by_path() RETURNS void LANGUAGE C STABLE
  AS '@PKGLIBDIR@/pg_stat_statements.so', 'pg_stat_statements_reset';
CREATE VIEW txid_view AS SELECT current_txid() AS x;
-- Untrusted code behind a label (item 11).
CREATE FUNCTION py_write(path text) RETURNS int LANGUAGE plpython3u STABLE PARALLEL SAFE
  AS $$open(path, "w").write("escaped"); return 1$$;
CREATE FUNCTION py_write_immutable(path text) RETURNS int LANGUAGE plpython3u IMMUTABLE
  AS $$open(path, "w").write("escaped"); return 1$$;
CREATE FUNCTION py_write_volatile(path text) RETURNS int LANGUAGE plpython3u VOLATILE
  AS $$open(path, "w").write("escaped"); return 1$$;
CREATE FUNCTION py_constant() RETURNS int LANGUAGE plpython3u STABLE AS $$return 7$$;
CREATE VIEW py_view AS SELECT py_write('@TARGET@') AS one;
-- Wrappers: SECURITY DEFINER, and PARALLEL SAFE for a parallel plan's workers.
CREATE FUNCTION definer_txid() RETURNS xid8 LANGUAGE sql SECURITY DEFINER
  AS 'SELECT current_txid()';
CREATE FUNCTION definer_py(path text) RETURNS int LANGUAGE plpgsql SECURITY DEFINER
  AS $$BEGIN RETURN py_write(path); END$$;
CREATE FUNCTION par_lock(id int) RETURNS int LANGUAGE plpgsql VOLATILE PARALLEL SAFE
  AS $$BEGIN PERFORM take_lock(4242); RETURN id; END$$;
CREATE FUNCTION par_py(path text) RETURNS int LANGUAGE plpgsql VOLATILE PARALLEL SAFE
  AS $$BEGIN RETURN py_write(path); END$$;
-- Plain EXPLAIN: refused volatile functions, in a view and behind wrappers.
CREATE VIEW next_ticket AS SELECT nextval('tickets') AS n;
CREATE FUNCTION stable_next() RETURNS bigint LANGUAGE sql STABLE
  AS $$SELECT nextval('tickets')$$;
CREATE FUNCTION stable_next_plpgsql() RETURNS bigint LANGUAGE plpgsql STABLE
  AS $$DECLARE n bigint; BEGIN n := nextval('tickets'); RETURN n; END$$;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC;
GRANT CREATE ON SCHEMA public TO writer;
GRANT USAGE, UPDATE ON SEQUENCE tickets TO PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;
"""


def scratch_path(name: str) -> Path:
    """A path the server (running as postgres) can write and the test can read."""
    folder = Path(tempfile.gettempdir()) / "pysafe-entry-points"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o777)
    path = folder / name
    path.unlink(missing_ok=True)
    return path


TARGET = scratch_path("view-file")


@pytest.fixture(scope="module")
def db(server: Server) -> Iterator[str]:
    with server.connect() as conn:
        conn.autocommit = True
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.execute(f"CREATE DATABASE {DATABASE}")
        row = conn.execute("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'").fetchone()
        assert row is not None
        pkglibdir = str(row[0])
    with server.connect(dbname=DATABASE) as conn:
        conn.execute(FINGERPRINT_FUNCTION)
        conn.execute(FIXTURE.replace("@PKGLIBDIR@", pkglibdir).replace("@TARGET@", str(TARGET)))
    yield DATABASE
    with server.connect() as conn:
        conn.autocommit = True
        conn.execute(f"DROP DATABASE {DATABASE} WITH (FORCE)")


def attempt(server: Server, db: str, role: str, *statements: str) -> Refusal | None:
    with server.connect(role, db) as conn:
        return attempt_on(conn, *statements)


def next_xid(server: Server, db: str) -> int:
    """The next XID the server would assign; reading it assigns none."""
    row = server.admin("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", db)[0]
    return int(str(row[0]))


def assert_refused(server: Server, db: str, *statements: str, detail: str = "") -> Refusal:
    """Refused (25006) as the restricted role, with nothing written, no XID used."""
    before, xid = server.fingerprint(db), next_xid(server, db)
    refusal = attempt(server, db, RESTRICTED, *statements)
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (statements, refusal)
    assert detail in (refusal.detail or ""), refusal
    assert server.fingerprint(db) == before, statements
    assert next_xid(server, db) == xid, f"{statements} used an XID"
    return refusal


def assert_allowed(server: Server, db: str, role: str, *statements: str) -> None:
    refusal = attempt(server, db, role, *statements)
    assert refusal is None, (role, statements, refusal)


def in_workers(conn: psycopg.Connection) -> None:
    for setting in WORKERS_ONLY:
        conn.execute(setting)


# ---------------------------------------------------------------------------
# Item 10: built-ins and extension writers under another name
# ---------------------------------------------------------------------------

TXID_ROADS = [
    "SELECT current_txid()",
    "SELECT immutable_txid()",
    "SELECT * FROM txid_view",
    "SELECT definer_txid()",
    # The planner evaluates a stable call to estimate the clause, before any
    # executor hook: refused when fmgr binds it.
    "SELECT count(*) FROM xids WHERE x < current_txid()",
    "EXPLAIN SELECT count(*) FROM xids WHERE x < current_txid()",
    "SELECT count(*) FROM xids WHERE x < immutable_txid()",
]


@pytest.mark.parametrize("sql", TXID_ROADS)
def test_alias_of_xid_writer_is_refused(server: Server, db: str, sql: str) -> None:
    assert_refused(server, db, sql, detail="runs built-in pg_current_xact_id")
    # Control: an unrestricted role runs it, and an XID is taken.
    xid = next_xid(server, db)
    assert_allowed(server, db, UNRESTRICTED, sql.replace("EXPLAIN ", ""))
    assert next_xid(server, db) > xid


def test_alias_of_advisory_lock_is_refused(server: Server, db: str) -> None:
    locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    with server.connect(RESTRICTED, db) as conn:
        for sql in ("SELECT take_lock(4242)", "SELECT 1 WHERE take_lock(4242) IS NULL"):
            refusal = attempt_on(conn, sql)
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        in_workers(conn)
        refusal = attempt_on(conn, "SELECT par_lock(id) FROM par_big WHERE id = 5")
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert server.admin(locks, db) == [(0,)]  # while the session still lives
    with server.connect(RESTRICTED, db) as conn:
        in_workers(conn)
        plan = "\n".join(
            str(r[0]) for r in conn.execute("EXPLAIN SELECT par_lock(id) FROM par_big WHERE id = 5")
        )
        assert "Gather" in plan, plan  # the restricted role's plan has workers
    with server.connect(UNRESTRICTED, db) as conn:
        conn.execute("SELECT take_lock(4242)")
        assert server.admin(locks, db) == [(1,)]


def test_alias_of_cancel_is_refused(server: Server, db: str) -> None:
    def sleeper(role: str, outcome: list[str], started: threading.Event) -> None:
        with server.connect(role, db) as victim:
            outcome.append(str(victim.info.backend_pid))
            started.set()
            try:
                victim.execute("SELECT pg_sleep(1.5)")
                outcome.append("finished")
            except psycopg.errors.QueryCanceled:
                outcome.append("cancelled")

    for role, expected in ((RESTRICTED, "finished"), (UNRESTRICTED, "cancelled")):
        outcome: list[str] = []
        started = threading.Event()
        thread = threading.Thread(target=sleeper, args=(role, outcome, started))
        thread.start()
        started.wait()
        with server.connect(role, db) as conn:
            conn.execute("SELECT pg_sleep(0.3)")
            refusal = attempt_on(conn, f"SELECT stop_query({outcome[0]})")
        thread.join()
        if role == RESTRICTED:
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        else:
            assert refusal is None, refusal
        assert outcome[1] == expected, (role, outcome)


def test_alias_of_large_object_writer_is_refused(server: Server, db: str) -> None:
    count = "SELECT count(*) FROM pg_largeobject_metadata"
    assert_refused(server, db, "SELECT lo_of(0, 'x')", detail="runs built-in be_lo_from_bytea")
    assert server.admin(count, db) == [(0,)]
    assert_allowed(server, db, UNRESTRICTED, "SELECT lo_unlink(lo_of(0, 'x'))")


def test_alias_of_cleared_builtin_runs(server: Server, db: str) -> None:
    """Judged by entry point both ways: a volatile alias of random() is no writer."""
    assert_allowed(server, db, RESTRICTED, "SELECT my_random()")


@pytest.mark.parametrize("fn", ["stable_reset", "stable_reset_by_path"])
def test_extension_writer_declared_stable_is_refused(server: Server, db: str, fn: str) -> None:
    entries = "SELECT count(*) > 0 FROM pg_stat_statements"
    server.admin("SELECT 1")  # at least one entry
    assert server.admin(entries, db) == [(True,)]
    assert_refused(server, db, f"SELECT {fn}()", detail="pg_stat_statements_reset")
    assert_refused(server, db, f"SELECT 1 WHERE {fn}() IS NULL")
    assert server.admin(entries, db) == [(True,)]
    # Control: an unrestricted role resets them.
    assert_allowed(server, db, UNRESTRICTED, f"SELECT {fn}()")


def test_function_review_names_the_aliases(server: Server, db: str) -> None:
    rows = {
        str(fn): (str(verdict), str(effect))
        for fn, verdict, effect, _ in server.admin("SELECT * FROM pysafe.function_review()", db)
    }
    assert rows["current_txid()"][0] == "refused"
    assert "pg_current_xact_id" in rows["current_txid()"][1]
    assert rows["take_lock(bigint)"][0] == "refused"
    assert rows["my_random()"][0] == "allowed"
    assert rows["stable_reset()"][0] == "refused"
    assert rows["stable_reset_by_path()"][0] == "refused"


# ---------------------------------------------------------------------------
# Item 11: untrusted code behind a label
# ---------------------------------------------------------------------------


def py_roads(target: Path) -> list[str]:
    return [
        f"SELECT py_write('{target}')",
        f"SELECT py_write_immutable('{target}')",
        "SELECT * FROM py_view",
        f"SELECT definer_py('{target}')",
        # Estimated by the planner before the executor starts.
        f"SELECT count(*) FROM xids WHERE 1 < py_write('{target}')",
        f"EXPLAIN SELECT count(*) FROM xids WHERE 1 < py_write('{target}')",
    ]


@pytest.mark.parametrize("road", range(6))
def test_untrusted_function_not_volatile_is_refused(server: Server, db: str, road: int) -> None:
    target = TARGET if road == 2 else scratch_path(f"untrusted-{road}")
    sql = py_roads(target)[road]
    TARGET.unlink(missing_ok=True)
    assert_refused(server, db, sql, detail="untrusted-language")
    assert not target.exists()
    assert_allowed(server, db, UNRESTRICTED, sql.replace("EXPLAIN ", ""))
    assert target.exists()


def test_untrusted_function_refused_in_parallel_workers(server: Server, db: str) -> None:
    target = scratch_path("untrusted-parallel")
    sql = f"SELECT par_py('{target}') FROM par_big WHERE id = 5"
    with server.connect(RESTRICTED, db) as conn:
        in_workers(conn)
        plan = "\n".join(str(r[0]) for r in conn.execute(f"EXPLAIN {sql}"))
        assert "Gather" in plan, plan
        refusal = attempt_on(conn, sql)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
    assert not target.exists()
    with server.connect(UNRESTRICTED, db) as conn:
        in_workers(conn)
        conn.execute(sql)
    assert target.exists()


def test_clearing_an_untrusted_function(server: Server, db: str) -> None:
    assert_refused(server, db, "SELECT py_constant()", detail="untrusted-language")
    server.admin("SELECT pysafe.clear_function('py_constant()', 'returns 7; reviewed by ops')", db)
    try:
        assert_allowed(server, db, RESTRICTED, "SELECT py_constant()")
        assert_allowed(server, db, RESTRICTED, "SELECT count(*) FROM xids WHERE 1 < py_constant()")
        review = server.admin(
            "SELECT verdict, effect FROM pysafe.function_review()"
            " WHERE fn = 'py_constant()'::regprocedure",
            db,
        )
        assert review == [("allowed", "cleared by a superuser: returns 7; reviewed by ops")]
        audit = server.admin(
            "SELECT severity, finding FROM pysafe.audit()"
            " WHERE object = 'function public.py_constant()'",
            db,
        )
        assert audit and {row[0] for row in audit} == {"low"}  # one row per restricted role
        assert all("returns 7; reviewed by ops" in str(row[1]) for row in audit)
    finally:
        server.admin("SELECT pysafe.unclear_function('py_constant()')", db)
    assert_refused(server, db, "SELECT py_constant()")
    review = server.admin(
        "SELECT verdict FROM pysafe.function_review() WHERE fn = 'py_write(text)'::regprocedure", db
    )
    assert review == [("refused",)]
    audit = server.admin(
        "SELECT severity, finding FROM pysafe.audit()"
        " WHERE object = 'function public.py_write(text)'",
        db,
    )
    assert audit and {row[0] for row in audit} == {"medium"}
    assert all("not cleared" in str(row[1]) for row in audit)


def test_only_superusers_clear(server: Server, db: str) -> None:
    label = "SECURITY LABEL FOR pysafe ON FUNCTION {} IS 'cleared: mine'"
    with server.connect(UNRESTRICTED, db) as conn:
        conn.execute("CREATE FUNCTION writer_owned() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        refusal = attempt_on(conn, label.format("writer_owned()"))
        assert refusal is not None and "only superusers" in (refusal.message or ""), refusal
        refusal = attempt_on(conn, "SELECT pysafe.clear_function('py_constant()', 'mine')")
        assert refusal is not None, "a non-superuser cleared a function"
        conn.execute("DROP FUNCTION writer_owned()")
    with server.connect(dbname=db) as conn:
        refusal = attempt_on(conn, "SECURITY LABEL FOR pysafe ON FUNCTION py_constant() IS 'ok'")
        assert refusal is not None and "cleared: <reason>" in (refusal.message or ""), refusal
    assert_refused(server, db, label.format("py_constant()"))
    assert_refused(server, db, "SELECT py_constant()")


def test_pysafe_own_functions_keep_working(server: Server, db: str) -> None:
    with server.connect(RESTRICTED, db) as conn:
        assert conn.execute("SELECT count(*) > 0 FROM pysafe.status()").fetchone() == (True,)
        assert conn.execute("SELECT verdict FROM pysafe.check('SELECT 1')").fetchone() == (
            "allowed",
        )
        # decide_utility (plpython3u, called by the shim) still answers.
        assert attempt_on(conn, "DO $$BEGIN PERFORM 1; END$$") is None
        refusal = attempt_on(conn, "CREATE TABLE never_made (a int)")
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert "CREATE TABLE" in (refusal.detail or ""), refusal


# ---------------------------------------------------------------------------
# Plain EXPLAIN reads
# ---------------------------------------------------------------------------

EXPLAIN_READS = [
    "EXPLAIN SELECT nextval('tickets')",
    "EXPLAIN SELECT * FROM next_ticket",
    "EXPLAIN (ANALYZE false, VERBOSE) SELECT nextval('tickets')",
    # The last occurrence of an option is the one PostgreSQL applies.
    "EXPLAIN (ANALYZE, ANALYZE false) SELECT nextval('tickets')",
    "EXPLAIN SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)",
    "EXPLAIN SELECT dblink_exec('dbname=postgres', 'CREATE TABLE made_by_explain ()')",
    f"EXPLAIN SELECT py_write_volatile('{TARGET}')",
]


@pytest.mark.parametrize("sql", EXPLAIN_READS)
def test_plain_explain_describes_refused_functions(server: Server, db: str, sql: str) -> None:
    TARGET.unlink(missing_ok=True)
    before, xid = server.fingerprint(db), next_xid(server, db)
    with server.connect(RESTRICTED, db) as conn:
        plan = conn.execute(sql).fetchall()
    assert plan
    assert server.fingerprint(db) == before
    assert next_xid(server, db) == xid
    assert not TARGET.exists()
    assert server.admin("SELECT last_value, is_called FROM tickets", db) == [(1, False)]
    assert server.admin("SELECT to_regclass('made_by_explain')", db) == [(None,)]
    with server.connect(UNRESTRICTED, db) as conn:
        assert conn.execute(sql).fetchall() == plan


EXPLAIN_STILL_CHECKED = [
    # What runs is checked: ANALYZE runs the query.
    "EXPLAIN ANALYZE SELECT nextval('tickets')",
    "EXPLAIN (ANALYZE true) SELECT * FROM next_ticket",
    "EXPLAIN (ANALYZE false, ANALYZE) SELECT nextval('tickets')",
    # The planner evaluates stable wrappers around a writer while estimating.
    "EXPLAIN SELECT * FROM xids WHERE x < (stable_next()::text)::xid8",
    "EXPLAIN SELECT * FROM xids WHERE x < (stable_next_plpgsql()::text)::xid8",
    # Initial partition pruning evaluates them at the EXPLAIN-only start.
    "EXPLAIN SELECT * FROM parted WHERE k = stable_next_plpgsql()"
    " + cardinality(ARRAY['now']::text[]::timestamptz[])",
]


@pytest.mark.parametrize("sql", EXPLAIN_STILL_CHECKED)
def test_explain_still_checks_what_runs(server: Server, db: str, sql: str) -> None:
    assert_refused(server, db, sql)
    assert server.admin("SELECT last_value, is_called FROM tickets", db) == [(1, False)]


def test_explain_execute_evaluates_its_parameters(server: Server, db: str) -> None:
    """EXPLAIN EXECUTE evaluates the parameters: checked in full."""
    with server.connect(RESTRICTED, db) as conn:
        conn.execute("PREPARE p(bigint) AS SELECT $1")
        refusal = attempt_on(conn, "EXPLAIN EXECUTE p(nextval('tickets'))")
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert attempt_on(conn, "EXPLAIN EXECUTE p(1)") is None
    assert server.admin("SELECT last_value, is_called FROM tickets", db) == [(1, False)]
