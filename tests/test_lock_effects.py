"""Exceptions defined by effect: locks a writer needs, programs and server files.

A restricted session never holds, beyond its statement, a lock stronger than
ROW SHARE on a permanent relation, and never waits for one; it never runs a
program nor writes a server file, whatever ``block_dml``, ``block_ddl`` and
``allow_temp_objects`` say (issue 17, items 6 to 8).  Parse analysis locks
a write's target in ROW EXCLUSIVE mode before any permission check or hook
(PREPARE, plain EXPLAIN, the protocol's Parse message, function bodies), so
the shim refuses the write right after parse analysis, and the abort lets
the lock go.  Each claim is checked from a superuser's ``pg_locks`` while
the restricted transaction is still open, and against an unrestricted role,
for which the same statement takes the lock (or runs the program).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import pq

from tests.support import READ_ONLY_SQLSTATE, Refusal, Server, attempt_on

# Owned by the superuser, with no privilege granted to anyone.
NO_ACCESS = "lock_noacc"
SETUP = f"""
CREATE TABLE {NO_ACCESS} (id int PRIMARY KEY);
CREATE FUNCTION lock_probe_prepare() RETURNS void LANGUAGE sql
  AS $$PREPARE lock_probe_fn AS UPDATE accounts SET balance = balance$$;
GRANT EXECUTE ON FUNCTION lock_probe_prepare() TO PUBLIC;
"""
TEARDOWN = f"DROP TABLE {NO_ACCESS}; DROP FUNCTION lock_probe_prepare()"

# Locks a read-only session may hold: pg_dump's, and SELECT FOR UPDATE's at parse.
WEAK_LOCKS = ("AccessShareLock", "RowShareLock")

STRONG_LOCKS_SQL = """
SELECT c.relname, l.mode, l.granted FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = %s AND l.locktype = 'relation' AND c.relpersistence <> 't'
  AND l.mode <> ALL (%s) ORDER BY 1, 2
"""


@pytest.fixture(scope="module")
def objects(server: Server) -> Iterator[None]:
    server.admin(SETUP)
    yield
    server.admin(TEARDOWN)


def strong_locks(server: Server, pid: int) -> list[tuple[object, ...]]:
    """Locks above ROW SHARE on permanent relations the backend holds or awaits."""
    with server.connect() as conn:
        return conn.execute(STRONG_LOCKS_SQL, [pid, list(WEAK_LOCKS)]).fetchall()


def takes_row_exclusive(held: list[tuple[object, ...]]) -> bool:
    return any(mode == "RowExclusiveLock" for _, mode, _ in held)


def backend_pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def protocol_prepare(conn: psycopg.Connection, sql: str) -> Refusal | None:
    """The extended protocol's Parse message alone (libpq PQprepare), as drivers send it."""
    result = conn.pgconn.prepare(b"lock_probe_parse", sql.encode())
    if result.status == pq.ExecStatus.COMMAND_OK:
        return None
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY)
    return Refusal(sqlstate.decode() if sqlstate else None, message.decode() if message else None)


def locks_left_by(
    server: Server, user: str, sql: str, via: str
) -> tuple[Refusal | None, list[tuple[object, ...]]]:
    """Run sql by one road in an open transaction; its refusal, and the strong
    locks the backend still holds while that transaction is open."""
    with server.connect(user) as conn:
        pid = backend_pid(conn)
        attempt_on(conn, "BEGIN")
        if via == "parse message":
            refusal = protocol_prepare(conn, sql)
        else:
            refusal = attempt_on(conn, ROADS[via].format(sql=sql))
        held = strong_locks(server, pid)
        attempt_on(conn, "ROLLBACK")
    return refusal, held


ROADS = {
    "PREPARE": "PREPARE lock_probe AS {sql}",
    "plain EXPLAIN": "EXPLAIN {sql}",
    "EXPLAIN (ANALYZE off)": "EXPLAIN (ANALYZE off, COSTS off) {sql}",
    "DO block": "DO $$BEGIN EXECUTE 'EXPLAIN {sql}'; END$$",
    "DO block PREPARE": "DO $$BEGIN EXECUTE 'PREPARE lock_probe AS {sql}'; END$$",
    "parse message": "{sql}",
}
WRITES = [
    "UPDATE accounts SET balance = balance",  # the restricted roles own it
    f"UPDATE {NO_ACCESS} SET id = id",  # no privilege on it at all
    "INSERT INTO accounts VALUES (95, 1)",
    "DELETE FROM accounts WHERE id = 1",
    "MERGE INTO accounts a USING (VALUES (1)) v (id) ON a.id = v.id"
    " WHEN MATCHED THEN UPDATE SET balance = a.balance",
    "WITH w AS (DELETE FROM accounts WHERE id = 1 RETURNING id) SELECT * FROM w",
]


# EXPLAIN checks privileges as its plan starts, and fails there without them.
CASES = [
    (sql, via)
    for sql in WRITES
    for via in ROADS
    if NO_ACCESS not in sql or "EXPLAIN" not in ROADS[via] or "PREPARE" in ROADS[via]
]


@pytest.mark.usefixtures("objects")
@pytest.mark.parametrize(("sql", "via"), CASES, ids=[f"{v}: {s[:30]}" for s, v in CASES])
def test_no_road_leaves_a_write_lock_held(server: Server, sql: str, via: str) -> None:
    refusal, held = locks_left_by(server, "reporting", sql, via)
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
    assert held == []
    # Control: an unrestricted role keeps ROW EXCLUSIVE until its transaction ends.
    refusal, held = locks_left_by(server, "writer", sql, via)
    assert refusal is None, refusal
    assert takes_row_exclusive(held), held


@pytest.mark.usefixtures("objects")
def test_the_refusal_has_the_executor_check_s_words(server: Server) -> None:
    refusal, _ = locks_left_by(server, "reporting", f"UPDATE {NO_ACCESS} SET id = id", "PREPARE")
    assert refusal is not None and refusal.message == "cannot execute UPDATE in a read-only session"
    refusal, _ = locks_left_by(server, "reporting", WRITES[-1], "plain EXPLAIN")
    assert refusal is not None
    assert refusal.message == "cannot execute a data-modifying WITH clause in a read-only session"


@pytest.mark.usefixtures("objects")
def test_a_sql_function_body_leaves_no_write_lock(server: Server) -> None:
    for user, refused in (("reporting", True), ("writer", False)):
        with server.connect(user) as conn:
            pid = backend_pid(conn)
            attempt_on(conn, "BEGIN")
            refusal = attempt_on(conn, "SELECT lock_probe_prepare()")
            held = strong_locks(server, pid)
            attempt_on(conn, "ROLLBACK")
        if refused:
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
            assert held == []
        else:
            assert refusal is None and takes_row_exclusive(held), (refusal, held)


@pytest.mark.usefixtures("objects")
@pytest.mark.parametrize(
    "values",
    [{"block_dml": "off"}, {"block_ddl": "off"}, {"block_dml": "off", "block_ddl": "off"}],
    ids=",".join,
)
def test_with_checks_off_forcing_still_takes_no_write_lock(
    settings: Server, values: dict[str, str]
) -> None:
    """block_dml/block_ddl off, read-only forcing on: a permanent write cannot
    run, so neither its lock nor a LOCK above ROW SHARE is kept."""
    settings.set_settings(**values)
    for via in ("PREPARE", "plain EXPLAIN", "parse message"):
        refusal, held = locks_left_by(settings, "reporting", WRITES[0], via)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (via, refusal)
        assert held == [], via
    with settings.connect("reporting") as conn:
        pid = backend_pid(conn)
        attempt_on(conn, "BEGIN")
        refusal = attempt_on(conn, "LOCK accounts IN SHARE MODE")
        held = strong_locks(settings, pid)
        attempt_on(conn, "ROLLBACK")
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
    assert held == []


def test_temporary_writes_still_run(settings: Server) -> None:
    """The hook refuses only what the executor checks refuse: a session's own
    temporary tables are written, prepared and explained as before."""
    settings.set_settings(allow_temp_objects="on")
    with settings.connect("reporting") as conn:
        assert (
            attempt_on(
                conn,
                "CREATE TEMP TABLE mine (id int)",
                "BEGIN",
                "PREPARE fill AS INSERT INTO mine VALUES (1)",
                "EXECUTE fill",
                "EXPLAIN UPDATE mine SET id = 2",
                "WITH w AS (DELETE FROM mine RETURNING id) INSERT INTO mine SELECT id FROM w",
                "COMMIT",
            )
            is None
        )
        assert protocol_prepare(conn, "DELETE FROM mine") is None
        assert conn.execute("SELECT count(*) FROM mine").fetchone() == (1,)
        # One permanent target among temporary ones is refused at parse analysis.
        refusal = attempt_on(
            conn,
            "PREPARE mixed AS WITH w AS (DELETE FROM accounts RETURNING id) INSERT INTO mine"
            " SELECT id FROM w",
        )
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal


# -- item 6: a temporary table's foreign key ---------------------------------

FOREIGN_KEYS = [
    f"CREATE TEMP TABLE fk_probe (x int REFERENCES {NO_ACCESS} (id))",
    f"CREATE TEMP TABLE fk_probe (x int, FOREIGN KEY (x) REFERENCES {NO_ACCESS})",
    "CREATE TABLE pg_temp.fk_probe (x int REFERENCES accounts)",
    f"CREATE TEMP TABLE fk_probe (x int, CONSTRAINT c FOREIGN KEY (x)"
    f" REFERENCES public.{NO_ACCESS})",
]


@pytest.fixture
def temp_allowed(settings: Server) -> Iterator[Server]:
    settings.set_settings(allow_temp_objects="on")
    yield settings


@pytest.mark.usefixtures("objects")
@pytest.mark.parametrize("sql", FOREIGN_KEYS, ids=lambda s: s[28:70])
def test_a_temporary_foreign_key_never_queues_for_a_permanent_lock(
    temp_allowed: Server, sql: str
) -> None:
    """The attack: a weak lock held elsewhere, then a foreign key to the table;
    the SHARE ROW EXCLUSIVE it queues for would stall every writer behind it."""
    target = "accounts" if "accounts" in sql else NO_ACCESS
    with temp_allowed.connect() as holder:
        holder.autocommit = False
        holder.execute(f"LOCK {target} IN ROW EXCLUSIVE MODE")
        for user, refused in (("reporting", True), ("writer", False)):
            with temp_allowed.connect(user) as conn:
                refusal = attempt_on(conn, "SET lock_timeout = '1s'", sql)
            assert refusal is not None, user
            if refused:
                assert refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
                assert refusal.message == "cannot acquire exclusive locks in a read-only session"
            else:
                # Control: PostgreSQL queues for the lock first (55P03 at the timeout).
                assert refusal.sqlstate == "55P03", refusal
        holder.rollback()


def test_temporary_foreign_keys_between_temporary_tables_work(temp_allowed: Server) -> None:
    """Foreign keys among the session's own temporary tables are created as before.
    (Filling a referencing table stays refused: the key's check locks rows, FOR KEY
    SHARE, and row locks are refused even on temporary tables.)"""
    with temp_allowed.connect("reporting") as conn:
        statements = (
            "CREATE TEMP TABLE parent (id int PRIMARY KEY)",
            "CREATE TEMP TABLE child (p int REFERENCES parent (id), q int)",
            "CREATE TEMP TABLE tree (id int PRIMARY KEY, up int REFERENCES tree (id))",
            "CREATE TEMP TABLE kin (x int, FOREIGN KEY (x) REFERENCES pg_temp.parent)",
            "INSERT INTO parent VALUES (1)",
        )
        assert attempt_on(conn, *statements) is None
        row = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
            " AND conrelid IN ('child'::regclass, 'tree'::regclass, 'kin'::regclass)"
        ).fetchone()
        assert row == (3,)


# -- item 7: programs and server files --------------------------------------


@pytest.fixture
def program_role(server: Server) -> Iterator[None]:
    server.admin("GRANT pg_execute_server_program, pg_write_server_files TO reporting, writer")
    yield
    server.admin("REVOKE pg_execute_server_program, pg_write_server_files FROM reporting, writer")


SETTINGS_OFF = [
    {"block_dml": "off", "allow_temp_objects": "on"},
    {"block_ddl": "off", "force_read_only": "off"},
    {"block_dml": "off", "block_ddl": "off", "allow_temp_objects": "on"},
    {"block_dml": "off", "block_ddl": "off", "force_read_only": "off"},
]


def program_statements(probe: Path, temporary: bool) -> list[tuple[str, ...]]:
    """Each road to a program or a server file, all making ``probe``."""
    made = f"touch {probe}"
    roads: list[tuple[str, ...]] = [
        (f"COPY accounts FROM PROGRAM '{made}'",),
        (f"COPY accounts TO PROGRAM 'cat > {probe}'",),
        (f"COPY (SELECT 1) TO PROGRAM 'cat > {probe}'",),
        (f"COPY accounts TO '{probe}'",),
        (f"DO $$BEGIN EXECUTE 'COPY accounts TO ''{probe}'''; END$$",),
    ]
    if temporary:  # the issue's road: PostgreSQL fills a temporary table read-only
        create = "CREATE TEMP TABLE tmp (x text)"
        roads.append((create, f"COPY tmp FROM PROGRAM '{made}'"))
        roads.append((create, f"DO $$BEGIN EXECUTE 'COPY tmp FROM PROGRAM ''{made}'''; END$$"))
    return roads


@pytest.mark.usefixtures("program_role")
@pytest.mark.parametrize("values", SETTINGS_OFF, ids=",".join)
def test_no_program_runs_and_no_server_file_is_written(
    settings: Server, values: dict[str, str]
) -> None:
    settings.set_settings(**values)
    probe = Path(f"/tmp/pysafe-lock-effects-{uuid.uuid4().hex}")
    for statements in program_statements(probe, values.get("allow_temp_objects") == "on"):
        refusal = settings.attempt("reporting", *statements)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (statements, refusal)
        assert not probe.exists(), statements
    # Control: an unrestricted role with the same grants runs the program.
    assert settings.attempt("writer", f"COPY (SELECT 1) TO PROGRAM 'cat > {probe}'") is None
    assert probe.exists()
    probe.unlink()
