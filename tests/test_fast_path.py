"""The C fast path agrees with the Python policy, and keeps Python off the hot path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pysafe.policy import PolicySettings, decide_text
from tests.support import Server, attempt_on

MODIFYING_CTE_EXPLAIN = (
    "EXPLAIN ANALYZE WITH w AS (INSERT INTO t VALUES (1) RETURNING a) SELECT * FROM w"
)
HAND_PICKED = [
    "SHOW work_mem",
    "SHOW ALL",
    "SHOW transaction_read_only",
    "BEGIN",
    "START TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT a",
    "RELEASE a",
    "ROLLBACK TO a",
    "COMMIT AND CHAIN",
    "END",
    "ABORT",
    "BEGIN READ WRITE",
    "BEGIN READ ONLY",
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
    "START TRANSACTION READ WRITE",
    "PREPARE TRANSACTION 'x'",
    "COMMIT PREPARED 'x'",
    "SET work_mem = '8MB'",
    "SET LOCAL work_mem = 1024",
    "RESET work_mem",
    "SET search_path TO DEFAULT",
    "SET TIME ZONE 'UTC'",
    "SET ROLE NONE",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION DEFAULT",
    "SET datestyle FROM CURRENT",
    "SET default_transaction_read_only = off",
    "SET default_transaction_read_only = on",
    'SET "DEFAULT_TRANSACTION_READ_ONLY" = off',
    "SET Default_Transaction_Read_Only = 0",
    "SET transaction_read_only = off",
    "SET LOCAL transaction_read_only TO DEFAULT",
    "RESET transaction_read_only",
    "RESET default_transaction_read_only",
    "RESET ALL",
    "SET default_transaction_read_only FROM CURRENT",
    "SET transaction_read_only FROM CURRENT",
    "SET LOCAL transaction_read_only FROM CURRENT",
    "SET session_authorization FROM CURRENT",
    "SET pysafe.roles FROM CURRENT",
    "EXPLAIN UPDATE t SET a = 1",
    "EXPLAIN WITH w AS (DELETE FROM t RETURNING a) SELECT * FROM w",
    "SET TRANSACTION READ WRITE",
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET pysafe.roles = ''",
    "RESET pysafe.block_dml",
    'SET "pysafe.force_read_only" = off',
    "SET work_mem = 1; SET default_transaction_read_only = off",
    "DISCARD ALL",
    "DISCARD PLANS",
    "DISCARD TEMP",
    "DISCARD SEQUENCES",
    "LISTEN x",
    "UNLISTEN *",
    "NOTIFY x, 'y'",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    "FETCH 10 FROM c",
    "MOVE c",
    "CLOSE c",
    "CLOSE ALL",
    "PREPARE p AS INSERT INTO t VALUES (1)",
    "EXECUTE p",
    "DEALLOCATE p",
    "DEALLOCATE ALL",
    "CALL p()",
    "EXPLAIN SELECT 1",
    "EXPLAIN (COSTS OFF, VERBOSE) SELECT 1",
    "EXPLAIN INSERT INTO t VALUES (1)",
    "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
    "EXPLAIN (ANALYZE off) INSERT INTO t VALUES (1)",
    "EXPLAIN (ANALYZE) CREATE TABLE x AS SELECT 1",
    # EXPLAIN ANALYZE of a plain SELECT, however long: no Python (issue 10).
    "EXPLAIN ANALYZE SELECT * FROM t WHERE a IN (1, 2, 3)",
    "EXPLAIN (ANALYZE, BUFFERS, FORMAT json) SELECT count(*) FROM t",
    "EXPLAIN (ANALYZE false, ANALYZE) SELECT 1",
    "EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE",
    MODIFYING_CTE_EXPLAIN,
    "EXPLAIN ANALYZE WITH w AS (SELECT 1) SELECT * FROM w",
    "EXPLAIN ANALYZE SELECT * INTO y FROM t",
    "EXPLAIN ANALYZE CREATE MATERIALIZED VIEW m AS SELECT 1",
    "EXPLAIN ANALYZE EXECUTE p",
    "COPY t TO STDOUT",
    "COPY (SELECT 1) TO STDOUT WITH (FORMAT csv)",
    "COPY t FROM STDIN",
    "COPY t TO '/tmp/x'",
    "COPY t TO PROGRAM 'cat'",
    "DO $$BEGIN END$$",
    "VACUUM t",
    "CREATE TABLE x (a int)",
    "CREATE TEMP TABLE x (a int)",
    "DROP TABLE x",
    "SELECT 1",
    # What clients send every transaction (issue 10): read-only or isolation only.
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
    "START TRANSACTION READ ONLY, NOT DEFERRABLE",
    "BEGIN READ ONLY, READ WRITE",
    "BEGIN READ WRITE, READ ONLY",
    "SET TRANSACTION READ ONLY",
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
    "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET default_transaction_read_only = true",
    "SET default_transaction_read_only TO 'yes'",
    "SET default_transaction_read_only = 1",
    "SET default_transaction_read_only = 2",
    "SET default_transaction_read_only = 'of'",
    "SET default_transaction_read_only = ' on'",
    "SET default_transaction_read_only = 1.0",
    "SET LOCAL transaction_read_only = on",
    "SET transaction_read_only = t",
    "SET transaction_read_only = on, off",
    "LOCK TABLE t IN ACCESS SHARE MODE",
    "LOCK t IN ROW SHARE MODE NOWAIT",
    "LOCK t IN ROW EXCLUSIVE MODE",
    "LOCK t",
    "SET CONSTRAINTS ALL DEFERRED",
    "SET CONSTRAINTS ALL IMMEDIATE",
]

ALL_SETTINGS = [PolicySettings.from_flags(flags) for flags in range(512)]


def setting_statements(server: Server) -> list[str]:
    """SET/RESET forms for every setting this server knows."""
    names = [str(row[0]) for row in server.admin("SELECT name FROM pg_settings ORDER BY 1")]
    return [
        form.format(name=name)
        for name in names
        for form in ('SET "{name}" TO DEFAULT', 'RESET "{name}"', 'SET LOCAL "{name}" = off')
    ]


def test_fast_path_allows_only_what_python_allows(server: Server) -> None:
    statements = HAND_PICKED + setting_statements(server)
    with server.connect() as conn:
        # EXPLAIN's statement is analyzed, as the server does: it needs its objects.
        conn.execute("CREATE TEMP TABLE t (a int)")
        conn.execute("PREPARE p AS SELECT 1")
        fast = {
            sql: bool(
                conn.execute(  # type: ignore[index]
                    "SELECT pysafe_internal.fast_path_allows(%s)", [sql]
                ).fetchone()[0]
            )
            for sql in statements
        }
    disagreements = [
        (sql, settings)
        for sql in statements
        if fast[sql]
        for settings in ALL_SETTINGS
        if not (sql == "DISCARD ALL" and settings.session_authorization_locked)
        if not all(result.verdict.allowed for result in decide_text(sql, settings))
    ]
    assert disagreements == []
    # The fast path is not vacuous, and leaves protected settings to Python.
    assert fast["SET work_mem = '8MB'"] and fast["COMMIT"] and fast["SHOW work_mem"]
    assert fast["SET default_transaction_read_only = on"] and fast["SET transaction_read_only = t"]
    assert not fast['SET "DEFAULT_TRANSACTION_READ_ONLY" = off']
    assert not fast["SET default_transaction_read_only = ' on'"]
    assert not fast["SET default_transaction_read_only = 2"]
    assert fast["BEGIN READ ONLY"] and fast["BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"]
    assert not fast["BEGIN READ ONLY, READ WRITE"] and not fast["BEGIN READ WRITE, READ ONLY"]
    assert fast["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"]
    assert fast["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"]
    assert not fast["SET TRANSACTION READ WRITE"]
    assert not fast["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"]
    assert fast["LOCK TABLE t IN ACCESS SHARE MODE"] and not fast["LOCK t"]
    assert fast["SET CONSTRAINTS ALL DEFERRED"]
    assert fast["RESET ALL"] and fast["DISCARD ALL"]  # this session has no locked identity
    assert fast["DECLARE c CURSOR WITH HOLD FOR SELECT 1"] and fast["COPY t TO STDOUT"]
    # A write's plan takes the write's locks: Python decides (on a temporary table here).
    assert not fast["EXPLAIN INSERT INTO t VALUES (1)"] and fast["DISCARD PLANS"]
    assert fast["SET default_transaction_read_only FROM CURRENT"]
    assert fast["SET transaction_read_only FROM CURRENT"]
    assert not fast["EXPLAIN (ANALYZE off) INSERT INTO t VALUES (1)"]
    assert fast["EXPLAIN ANALYZE SELECT * FROM t WHERE a IN (1, 2, 3)"]
    assert fast["EXPLAIN (ANALYZE false, ANALYZE) SELECT 1"]
    assert not fast[MODIFYING_CTE_EXPLAIN]
    assert not fast["EXPLAIN ANALYZE SELECT * INTO y FROM t"]
    assert not fast["EXPLAIN ANALYZE CREATE MATERIALIZED VIEW m AS SELECT 1"]
    assert not fast["COPY t TO PROGRAM 'cat'"] and not fast["COPY t FROM STDIN"]
    assert not fast["DO $$BEGIN END$$"] and not fast["PREPARE TRANSACTION 'x'"]


def test_discard_all_goes_to_python_when_the_identity_is_locked(settings: Server) -> None:
    """The fast path's one runtime input: a locked SET SESSION AUTHORIZATION."""
    settings.set_settings(lock_session_authorization="on")
    with settings.connect("app_login") as conn:
        row = conn.execute("SELECT pysafe_internal.fast_path_allows('DISCARD ALL')").fetchone()
        assert row == (True,)
        conn.execute("SET SESSION AUTHORIZATION reporting")
        row = conn.execute("SELECT pysafe_internal.fast_path_allows('DISCARD ALL')").fetchone()
        assert row == (False,)
        refusal = attempt_on(conn, "DISCARD ALL")
        assert refusal is not None and refusal.sqlstate == "25006"


def backend_has_python(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "plpython3" in maps or "libpython3" in maps


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_sessions_needing_no_python_decision_never_load_python(server: Server) -> None:
    with server.connect("reporting") as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        pid = int(row[0])
        attempt_on(
            conn,
            "SELECT * FROM accounts",
            "SET work_mem = '8MB'",
            "SHOW work_mem",
            "BEGIN",
            "SELECT 1",
            "COMMIT",
            "RESET work_mem",
            "BEGIN",
            "DECLARE c CURSOR FOR SELECT * FROM accounts",
            "FETCH 1 FROM c",
            "CLOSE c",
            "COMMIT",
            "PREPARE q AS SELECT * FROM accounts",
            "EXECUTE q",
            "DEALLOCATE q",
            "EXPLAIN SELECT * FROM accounts",
            "COPY accounts TO STDOUT",
            "LISTEN chan",
            # What drivers and pg_dump send around every transaction.
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "LOCK TABLE accounts IN ACCESS SHARE MODE",
            "COMMIT",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "SET default_transaction_read_only = on",
            "RESET ALL",
            "DISCARD ALL",
        )
        attempt_on(conn, "INSERT INTO accounts VALUES (1, 1)")  # refused in C
        attempt_on(conn, "SELECT c_volatile()")  # refused in C
        assert not backend_has_python(pid)
        # A statement only the Python policy can decide starts the interpreter.
        attempt_on(conn, "DO $$BEGIN END$$")
        assert backend_has_python(pid)
    with server.connect("writer") as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        attempt_on(conn, "CREATE TEMP TABLE t (x int)", "LISTEN chan", "DROP TABLE t")
        assert not backend_has_python(int(row[0]))
