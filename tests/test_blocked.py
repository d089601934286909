"""Every write SafeSession blocks is refused for a restricted role, and nothing is written.

Each case also runs as "writer" (same privileges, not restricted), which must
succeed: the refusal comes from pysafe, and the test could fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, attempt_on, writes_as_unrestricted

COMMAND = "cannot execute {} in a read-only session"
SETTINGS = "cannot modify read-only transaction settings in a read-only session"
FUNCTIONS = "cannot execute functions that may have side effects in a read-only session"

# (id, statements, expected message)
BLOCKED: list[tuple[str, tuple[str, ...], str]] = [
    # DML, plain and nested
    ("insert", ("INSERT INTO accounts VALUES (50, 1)",), COMMAND.format("INSERT")),
    ("update", ("UPDATE accounts SET balance = 0",), COMMAND.format("UPDATE")),
    ("delete", ("DELETE FROM accounts",), COMMAND.format("DELETE")),
    (
        "merge",
        (
            "MERGE INTO accounts a USING (SELECT 1 AS id) s ON a.id = s.id "
            "WHEN MATCHED THEN UPDATE SET balance = 0",
        ),
        COMMAND.format("MERGE"),
    ),
    (
        "insert_on_conflict",
        ("INSERT INTO accounts VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET balance = 0",),
        COMMAND.format("INSERT"),
    ),
    (
        "cte_delete",
        ("WITH gone AS (DELETE FROM accounts RETURNING id) SELECT count(*) FROM gone",),
        "cannot execute a data-modifying WITH clause in a read-only session",
    ),
    (
        "cte_insert_in_insert",
        (
            "WITH x AS (INSERT INTO accounts VALUES (51, 1) RETURNING id) "
            "INSERT INTO accounts SELECT id + 1, 1 FROM x",
        ),
        COMMAND.format("INSERT"),
    ),
    ("plpgsql_function", ("SELECT invoker_insert()",), COMMAND.format("INSERT")),
    ("sql_function", ("SELECT sql_delete()",), COMMAND.format("DELETE")),
    ("security_definer", ("SELECT definer_insert()",), COMMAND.format("INSERT")),
    ("do_block", ("DO $$BEGIN UPDATE accounts SET balance = 0; END$$",), COMMAND.format("UPDATE")),
    (
        "do_block_dynamic",
        ("DO $$BEGIN EXECUTE 'DELETE FROM accounts'; END$$",),
        COMMAND.format("DELETE"),
    ),
    ("procedure", ("CALL writing_proc()",), COMMAND.format("UPDATE")),
    (
        "prepared",
        ("PREPARE ins AS INSERT INTO accounts VALUES (52, 1)", "EXECUTE ins"),
        COMMAND.format("INSERT"),
    ),
    (
        "select_for_update",
        ("SELECT * FROM accounts FOR UPDATE",),
        "cannot execute SELECT FOR UPDATE/SHARE in a read-only session",
    ),
    # Parse analysis locks a write's target: refused right after it, ANALYZE or not.
    (
        "explain_analyze_insert",
        ("EXPLAIN ANALYZE INSERT INTO accounts VALUES (53, 1)",),
        COMMAND.format("INSERT"),
    ),
    (
        "explain_analyze_cte_delete",
        ("EXPLAIN ANALYZE WITH gone AS (DELETE FROM accounts RETURNING id) SELECT 1",),
        "cannot execute a data-modifying WITH clause in a read-only session",
    ),
    ("explain_insert", ("EXPLAIN INSERT INTO accounts VALUES (1, 1)",), COMMAND.format("INSERT")),
    ("copy_from", ("COPY accounts FROM STDIN",), "cannot execute COPY FROM in a read-only session"),
    (
        # COPY ... TO STDOUT takes the C fast path; its query meets the executor check.
        "copy_of_dml_returning",
        ("COPY (INSERT INTO accounts VALUES (54, 1) RETURNING *) TO STDOUT",),
        "cannot execute INSERT in a read-only session",
    ),
    ("truncate", ("TRUNCATE accounts",), COMMAND.format("TRUNCATE TABLE")),
    # DDL: everything outside the allow-list
    ("create_table", ("CREATE TABLE t_new (x int)",), COMMAND.format("CREATE TABLE")),
    ("create_temp_table", ("CREATE TEMP TABLE t_tmp (x int)",), COMMAND.format("CREATE TABLE")),
    ("alter_table", ("ALTER TABLE accounts ADD COLUMN note text",), COMMAND.format("ALTER TABLE")),
    ("drop_view", ("DROP VIEW rich",), COMMAND.format("DROP VIEW")),
    ("create_index", ("CREATE INDEX ON accounts (balance)",), COMMAND.format("CREATE INDEX")),
    (
        "create_function",
        ("CREATE FUNCTION f_new() RETURNS int LANGUAGE sql AS 'SELECT 1'",),
        COMMAND.format("CREATE FUNCTION"),
    ),
    ("comment", ("COMMENT ON TABLE accounts IS 'x'",), COMMAND.format("COMMENT")),
    ("create_schema", ("CREATE SCHEMA s_new",), COMMAND.format("CREATE SCHEMA")),
    (
        "create_table_as",
        ("CREATE TABLE t_copy AS SELECT * FROM accounts",),
        "cannot execute CREATE TABLE AS in a read-only session",
    ),
    (
        "select_into",
        ("SELECT * INTO t_into FROM accounts",),
        COMMAND.format("SELECT INTO"),
    ),
    (
        "create_matview",
        ("CREATE MATERIALIZED VIEW mv AS SELECT * FROM accounts",),
        COMMAND.format("CREATE MATERIALIZED VIEW"),
    ),
    (
        "explain_analyze_ctas",
        ("EXPLAIN ANALYZE CREATE TABLE t_ex AS SELECT 1",),
        "cannot execute EXPLAIN ANALYZE of a writing statement in a read-only session",
    ),
    (
        "grant",
        ("GRANT SELECT ON accounts TO PUBLIC",),
        "cannot execute privilege changes in a read-only session",
    ),
    (
        "revoke",
        ("REVOKE SELECT ON accounts FROM writer",),
        "cannot execute privilege changes in a read-only session",
    ),
    ("vacuum", ("VACUUM accounts",), "cannot execute VACUUM/ANALYZE in a read-only session"),
    ("analyze", ("ANALYZE accounts",), "cannot execute VACUUM/ANALYZE in a read-only session"),
    (
        "lock_exclusive",
        ("BEGIN", "LOCK accounts IN ACCESS EXCLUSIVE MODE"),
        "cannot acquire exclusive locks in a read-only session",
    ),
    (
        "lock_row_exclusive",
        ("BEGIN", "LOCK accounts IN ROW EXCLUSIVE MODE"),
        "cannot acquire exclusive locks in a read-only session",
    ),
    (
        "copy_to_program",
        ("COPY accounts TO PROGRAM 'cat > /dev/null'",),
        "cannot execute COPY TO PROGRAM in a read-only session",
    ),
    (
        "ddl_in_do",
        ("DO $$BEGIN EXECUTE 'CREATE TABLE t_do (x int)'; END$$",),
        COMMAND.format("CREATE TABLE"),
    ),
    # Functions with side effects
    ("c_volatile", ("SELECT c_volatile()",), FUNCTIONS),
    ("c_volatile_definer", ("SELECT c_volatile_definer()",), FUNCTIONS),
    ("c_volatile_with_set", ("SELECT c_volatile_with_set()",), FUNCTIONS),
    ("c_volatile_in_view_query", ("SELECT c_volatile() FROM rich",), FUNCTIONS),
    ("untrusted_volatile", ("SELECT py_volatile()",), FUNCTIONS),
    # Built-in writers (pysafe.blocked_functions; all of them in test_functions.py)
    ("nextval", ("SELECT nextval('ticket_seq')",), FUNCTIONS),
    ("setval", ("SELECT setval('ticket_seq', 42)",), FUNCTIONS),
    ("lo_from_bytea", ("SELECT lo_from_bytea(0, 'x')",), FUNCTIONS),
    # Switching read-only off
    # (requests for READ WRITE, and resets of the read-only settings:
    # test_read_write_requests.py)
    (
        "prepare_transaction",
        ("BEGIN", "PREPARE TRANSACTION 'x'"),
        "cannot execute two-phase commit statements in a read-only session",
    ),
    ("alter_system", ("ALTER SYSTEM SET pysafe.roles = ''",), COMMAND.format("ALTER SYSTEM")),
    (
        "alter_role_self",
        ("ALTER ROLE CURRENT_USER SET default_transaction_read_only = off",),
        COMMAND.format("ALTER ROLE"),
    ),
]

# Cases the unrestricted control cannot run as "writer" (they need a superuser).
NO_CONTROL = {
    "c_volatile_definer",
    "alter_system",
    "prepare_transaction",
    "copy_to_program",
    "untrusted_volatile",
}


@pytest.mark.parametrize(
    ("statements", "message"), [c[1:] for c in BLOCKED], ids=[c[0] for c in BLOCKED]
)
def test_blocked_for_restricted_role(
    server: Server, statements: tuple[str, ...], message: str
) -> None:
    server.assert_refused("reporting", *statements, message=message)


@pytest.mark.parametrize(
    "statements",
    [c[1] for c in BLOCKED if c[0] not in NO_CONTROL],
    ids=[c[0] for c in BLOCKED if c[0] not in NO_CONTROL],
)
def test_same_statements_work_unrestricted(server: Server, statements: tuple[str, ...]) -> None:
    writes_as_unrestricted(server, *statements)


def test_reset_all_and_discard_all_do_not_lift_read_only(server: Server) -> None:
    for reset in ("RESET ALL", "DISCARD ALL"):
        server.assert_refused(
            "reporting",
            reset,
            "INSERT INTO accounts VALUES (60, 1)",
            message="cannot execute INSERT in a read-only session",
        )


@pytest.mark.parametrize("setting", ["default_transaction_read_only", "transaction_read_only"])
def test_set_config_cannot_lift_read_only(server: Server, setting: str) -> None:
    before = server.fingerprint()
    with server.connect("reporting") as conn:
        # PostgreSQL may itself refuse this one (25001: read-write mode must be set
        # before any query); either way the write after it must be refused.
        attempt_on(conn, f"SELECT set_config('{setting}', 'off', false)")
        refusal = attempt_on(conn, "INSERT INTO accounts VALUES (61, 1)")
    assert refusal is not None and refusal.sqlstate == "25006"
    assert server.fingerprint() == before


def test_set_config_cannot_leave_the_read_only_default_off(server: Server) -> None:
    """Whatever a statement did to it, the next one finds the default on again."""
    with server.connect("reporting") as conn:
        attempt_on(conn, "SELECT set_config('default_transaction_read_only', 'off', false)")
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute(
            "SELECT current_setting('default_transaction_read_only')"
        ).fetchone() == ("on",)


@pytest.fixture(scope="module")
def checks_alone(server: Server) -> Iterator[Server]:
    """Read-only forcing off for the module: only the shim's checks remain."""
    server.set_settings(force_read_only="off")
    yield server
    server.reset_settings()


@pytest.mark.parametrize("statements", [c[1] for c in BLOCKED], ids=[c[0] for c in BLOCKED])
def test_checks_alone_refuse_every_blocked_statement(
    checks_alone: Server, statements: tuple[str, ...]
) -> None:
    """Each layer holds alone: without read-only forcing, nothing gets written."""
    with checks_alone.connect("reporting") as conn:
        attempt_on(conn, "SELECT 1")
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
    checks_alone.assert_refused("reporting", *statements)
