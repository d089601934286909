"""pysafe.check() predicts what the server does: a differential test.

Each statement of a corpus runs for real as a restricted role, and its
outcome (refused with 25006, or run) is compared with what
``pysafe.check(sql, role)`` predicted.  The corpus reaches the function
checks by every road the issue found wrong: extension writers, untrusted
languages, SECURITY DEFINER bodies, views, operators, procedures, DO blocks,
EXPLAIN and cursors.  The same statements run as an unrestricted role, to
show the refusals are pysafe's.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.support import FINGERPRINT_FUNCTION, READ_ONLY_SQLSTATE, Server

DATABASE = "check_agreement"
RESTRICTED = "reporting"
UNRESTRICTED = "writer"

SETUP = """
CREATE EXTENSION pg_prewarm;
CREATE EXTENSION dblink;
CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO items SELECT g, g FROM generate_series(1, 5) g;
GRANT ALL ON items TO can_write;

-- Owned by the superuser: SECURITY DEFINER must not lift the restriction.
CREATE FUNCTION definer_update() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS
  $$BEGIN UPDATE items SET n = n + 1 WHERE id = 1; RETURN 1; END$$;
CREATE FUNCTION sql_delete() RETURNS void LANGUAGE sql AS $$DELETE FROM items WHERE id = 5$$;
CREATE FUNCTION atomic_insert() RETURNS void LANGUAGE sql
  BEGIN ATOMIC INSERT INTO items VALUES (99, 99); END;
CREATE FUNCTION reads_into() RETURNS int LANGUAGE plpgsql AS
  $$DECLARE v int; BEGIN SELECT n INTO v FROM items WHERE id = 2; RETURN v; END$$;
CREATE FUNCTION caught_update() RETURNS text LANGUAGE plpgsql AS
  $$BEGIN UPDATE items SET n = 0; RETURN 'wrote';
    EXCEPTION WHEN read_only_sql_transaction THEN RETURN 'caught'; END$$;
CREATE FUNCTION uncaught_update() RETURNS text LANGUAGE plpgsql AS
  $$BEGIN UPDATE items SET n = 0; RETURN 'wrote';
    EXCEPTION WHEN division_by_zero THEN RETURN 'caught'; END$$;
CREATE FUNCTION prewarms() RETURNS void LANGUAGE plpgsql AS
  $$BEGIN PERFORM pg_prewarm('items'); END$$;
CREATE FUNCTION wraps_definer() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN RETURN definer_update(); END$$;
CREATE FUNCTION dynamic_sql(q text) RETURNS void LANGUAGE plpgsql AS
  $$BEGIN EXECUTE q; END$$;
CREATE FUNCTION py_volatile() RETURNS int LANGUAGE plpython3u VOLATILE AS $$return 1$$;
CREATE FUNCTION py_stable() RETURNS int LANGUAGE plpython3u STABLE AS $$return 1$$;
CREATE FUNCTION sql_wraps_python() RETURNS int LANGUAGE sql AS $$SELECT py_volatile()$$;
CREATE FUNCTION py_equal(int, int) RETURNS boolean LANGUAGE plpython3u VOLATILE
  AS $$return args[0] == args[1]$$;
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = py_equal);
CREATE VIEW python_view AS SELECT id, py_volatile() AS one FROM items;
CREATE VIEW plain_view AS SELECT id, n FROM items WHERE n > 1;
-- Initial partition pruning evaluates its expressions as the executor starts,
-- even in EXPLAIN-only mode; the argument below is not folded at plan time.
CREATE TABLE parted (k int, v text) PARTITION BY LIST (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES IN (2);
CREATE FUNCTION stable_lo_create(r anyelement) RETURNS int STABLE LANGUAGE sql
  AS $$SELECT 1 FROM lo_create(0)$$;
CREATE FUNCTION stable_python(r anyelement) RETURNS int STABLE LANGUAGE plpgsql
  AS $$BEGIN PERFORM py_volatile(); RETURN 1; END$$;
CREATE PROCEDURE writing_proc() LANGUAGE plpgsql AS $$BEGIN DELETE FROM items; END$$;
CREATE PROCEDURE reading_proc(INOUT total bigint) LANGUAGE plpgsql AS
  $$BEGIN SELECT sum(n) INTO total FROM items; END$$;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA public TO PUBLIC;
"""

# Statements whose outcome check() can know in advance.
CORPUS = [
    # plain reads
    "SELECT count(*) FROM items",
    "SELECT * FROM plain_view",
    "SELECT reads_into()",
    "SELECT py_stable()",
    "SELECT caught_update()",
    "CALL reading_proc(NULL)",
    "EXPLAIN SELECT definer_update()",
    "EXPLAIN SELECT py_stable()",
    "DO $$BEGIN PERFORM count(*) FROM items; END$$",
    "SELECT 1 FROM items WHERE id = 1 AND n = 1",
    "COPY (SELECT reads_into()) TO STDOUT",
    # the issue's four
    "SELECT pg_prewarm('items')",
    "SELECT dblink_exec('dbname=postgres', 'SELECT 1')",
    "SELECT py_volatile()",
    "SELECT definer_update()",
    # bodies, directly and indirectly
    "SELECT sql_delete()",
    "SELECT atomic_insert()",
    "SELECT uncaught_update()",
    "SELECT prewarms()",
    "SELECT wraps_definer()",
    "SELECT sql_wraps_python()",
    "SELECT * FROM items WHERE n > definer_update()",
    "SELECT * FROM python_view",
    "SELECT 1 FROM items WHERE id === 1",
    "CALL writing_proc()",
    "DO $$BEGIN UPDATE items SET n = 0; END$$",
    "DO $$BEGIN PERFORM pg_prewarm('items'); END$$",
    "EXPLAIN SELECT pg_prewarm('items')",
    "EXPLAIN SELECT py_volatile()",
    "EXPLAIN ANALYZE SELECT definer_update()",
    "EXPLAIN (ANALYZE false) SELECT definer_update()",
    "COPY (SELECT definer_update()) TO STDOUT",
    "DECLARE c CURSOR FOR SELECT py_volatile()",
    "WITH w AS (SELECT prewarms()) SELECT * FROM w",
    "SELECT lo_create(0)",
    # the statement policy's own refusals
    # writes whose parse analysis locks the target (issue 17): refused right after it
    "EXPLAIN UPDATE items SET n = 0",
    "PREPARE p AS DELETE FROM items",
    "WITH w AS (DELETE FROM items RETURNING id) SELECT * FROM w",
    "INSERT INTO items VALUES (50, 50)",
    "CREATE TABLE made_here (x int)",
    "SELECT * FROM items FOR UPDATE",
]


@pytest.fixture(scope="module")
def database(server: Server) -> Iterator[str]:
    server.admin(f"CREATE DATABASE {DATABASE}")
    with server.connect(dbname=DATABASE) as conn:
        conn.execute(SETUP)
        conn.execute(FINGERPRINT_FUNCTION)
    try:
        yield DATABASE
    finally:
        server.admin(f"DROP DATABASE {DATABASE} WITH (FORCE)")


def predicted(
    server: Server, database: str, sql: str, role: str | None = RESTRICTED
) -> tuple[str, str]:
    """check()'s verdict and detail, asked by the superuser; role None: asked
    by the restricted role about itself."""
    asker = "postgres" if role is not None else RESTRICTED
    with server.connect(asker, database) as conn:
        [(verdict, detail)] = conn.execute(
            "SELECT verdict, coalesce(detail, '') FROM pysafe.check(%s, %s)",
            [sql, role or RESTRICTED],
        ).fetchall()
    return verdict, detail


def verdict_and_rule(server: Server, database: str, asker: str, sql: str) -> tuple[str, str]:
    with server.connect(asker, database) as conn:
        [row] = conn.execute(
            "SELECT verdict, rule FROM pysafe.check(%s, %s)", [sql, RESTRICTED]
        ).fetchall()
    return row


def ran(server: Server, database: str, role: str, sql: str) -> str:
    """'refused' (25006), 'allowed', or the other error's SQLSTATE; never committed."""
    with server.connect(role, database) as conn:
        conn.autocommit = False
        try:
            if sql.startswith("COPY"):
                with conn.cursor().copy(sql) as copy:
                    for _ in copy:
                        pass
            else:
                conn.execute(sql)
        except psycopg.Error as error:
            return "refused" if error.diag.sqlstate == READ_ONLY_SQLSTATE else str(error.sqlstate)
        finally:
            conn.rollback()
    return "allowed"


def test_check_agrees_with_enforcement(server: Server, database: str) -> None:
    before = server.fingerprint(database)
    with server.connect(dbname=database) as conn:
        items_before = conn.execute("SELECT array_agg(n ORDER BY id) FROM items").fetchone()
    disagreements = []
    verdicts = set()
    for sql in CORPUS:
        expected, detail = predicted(server, database, sql)
        actual = ran(server, database, RESTRICTED, sql)
        verdicts.add(expected)
        if expected != actual:
            disagreements.append(f"{sql}: check says {expected} ({detail}), server {actual}")
        # The restricted role asking about itself gets the same answer and rule.
        asked_by_dba = verdict_and_rule(server, database, "postgres", sql)
        if verdict_and_rule(server, database, RESTRICTED, sql) != asked_by_dba:
            disagreements.append(f"{sql}: {RESTRICTED} asking about itself is told otherwise")
    assert disagreements == []
    assert verdicts == {"allowed", "refused"}  # the corpus exercises both
    assert server.fingerprint(database) == before
    with server.connect(dbname=database) as conn:
        items_after = conn.execute("SELECT array_agg(n ORDER BY id) FROM items").fetchone()
    assert items_after == items_before


# dblink refuses a non-superuser a connection without a password (2F003).
DBLINK_CONTROL = "SELECT dblink_exec('dbname=postgres', 'SELECT 1')"


@pytest.mark.parametrize("sql", CORPUS[:-3])
def test_an_unrestricted_role_runs_the_corpus(server: Server, database: str, sql: str) -> None:
    # Control: with the same grants, nothing the corpus refused is refused by PostgreSQL.
    assert ran(server, database, UNRESTRICTED, sql) == (
        "2F003" if sql == DBLINK_CONTROL else "allowed"
    )
    assert predicted(server, database, sql, UNRESTRICTED)[0] == "allowed"


def test_the_issue_s_four_are_refused_with_the_rule_the_server_uses(
    server: Server, database: str
) -> None:
    with server.connect(dbname=database) as conn:
        rows = conn.execute(
            "SELECT verdict, rule FROM pysafe.check(%s, %s)",
            [
                "SELECT pg_prewarm('items'); SELECT dblink_exec('dbname=postgres', 'SELECT 1');"
                " SELECT py_volatile(); SELECT definer_update()",
                RESTRICTED,
            ],
        ).fetchall()
    assert rows == [
        ("refused", "c_functions"),
        ("refused", "c_functions"),
        ("refused", "untrusted_functions"),
        ("refused", "dml"),
    ]


def test_dynamic_sql_is_reported_as_unknown(server: Server, database: str) -> None:
    verdict, detail = predicted(server, database, "SELECT dynamic_sql('SELECT 1')")
    assert verdict == "unknown"
    assert "EXECUTE" in detail
    # Both outcomes are possible: that is why check() cannot say.
    assert ran(server, database, RESTRICTED, "SELECT dynamic_sql('SELECT 1')") == "allowed"
    write = "SELECT dynamic_sql('DELETE FROM items')"
    assert ran(server, database, RESTRICTED, write) == "refused"


def test_a_statement_the_server_cannot_plan_is_an_error(server: Server, database: str) -> None:
    verdict, _ = predicted(server, database, "SELECT * FROM no_such_table")
    assert verdict == "error"
    assert ran(server, database, RESTRICTED, "SELECT * FROM no_such_table") == "42P01"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT lo_create(4242)",
        "SELECT definer_update()",
        "CALL writing_proc()",
        "INSERT INTO items VALUES (77, 77)",
        "CREATE TABLE made_by_calls AS SELECT 1 AS x",
        "COPY (SELECT sql_delete()) TO STDOUT",
        "EXPLAIN ANALYZE DELETE FROM items",
    ],
)
def test_describing_calls_runs_nothing(server: Server, database: str, sql: str) -> None:
    """pysafe_internal.statement_calls() starts the executor in EXPLAIN-only
    mode with the hooks recording (and still checking): a restricted role
    calling it directly gets nothing run, and a call the checks refuse is
    refused to it as in a plain EXPLAIN, as is a write right after its parse
    analysis (which locks the target); a superuser gets it described."""
    query = "SELECT fn::text FROM pysafe_internal.statement_calls(%s, false)"
    before = server.fingerprint(database)
    refused = None
    with server.connect(RESTRICTED, database) as conn:
        try:
            conn.execute(query, [sql]).fetchall()
        except psycopg.Error as error:
            refused = error.diag.sqlstate
    # Parse analysis of a write would lock its target: refused right after it.
    refuses_early = "lo_create" in sql or sql.startswith(("INSERT", "EXPLAIN ANALYZE DELETE"))
    assert refused == (READ_ONLY_SQLSTATE if refuses_early else None)
    assert server.fingerprint(database) == before
    with server.connect(dbname=database) as conn:
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('made_by_calls')").fetchone() == (None,)
        names = conn.execute(query, [sql]).fetchall()
        if "lo_create" in sql:
            assert ("lo_create(oid)",) in names  # described, not run


PRUNING = "SELECT * FROM parted WHERE k = {}(cardinality(ARRAY['now']::text[]::timestamptz[]))"


@pytest.mark.parametrize("wrapper", ["stable_lo_create", "stable_python"])
@pytest.mark.parametrize(
    "via",
    [
        "SELECT * FROM pysafe_internal.statement_calls(%s, false)",
        "SELECT * FROM pysafe.check(%s)",
        "EXPLAIN {}",
        "{}",
    ],
)
def test_calls_evaluated_by_partition_pruning_are_checked(
    server: Server, database: str, wrapper: str, via: str
) -> None:
    """Describing a plan records its calls and still checks them: initial
    pruning runs a refused call at an EXPLAIN-only executor start (found by
    the review).  As a restricted role, nothing runs, by any of four roads."""
    sql = PRUNING.format(wrapper)
    before = server.fingerprint(database)
    with server.connect(RESTRICTED, database) as conn:
        try:
            if "%s" in via:
                rows = conn.execute(via, [sql]).fetchall()
            else:
                rows = conn.execute(via.format(sql)).fetchall()
        except psycopg.Error as error:
            assert error.diag.sqlstate == READ_ONLY_SQLSTATE, error
        else:
            assert "check" in via, rows  # check() reports the refusal as its verdict
            assert [row[1] for row in rows] == ["refused"]
    assert server.fingerprint(database) == before
    with server.connect(dbname=database) as conn:
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
    # Control: the same statement runs for an unrestricted role.
    assert ran(server, database, UNRESTRICTED, sql) == "allowed"
