"""Fail closed: when the policy cannot be evaluated, restricted sessions are refused.

Unrestricted sessions carry on.  The shim only calls the genuine entry point.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pysafe.install.files import find_pg_config
from tests.support import FINGERPRINT_FUNCTION, Server, attempt_on, writes_as_unrestricted

BARE_DB = "no_pysafe_here"
FUNCTIONS = "cannot execute functions that may have side effects in a read-only session"


@pytest.fixture
def bare_database(server: Server) -> Iterator[str]:
    """A database made from template0 after install: no pysafe objects in it."""
    server.admin(f"CREATE DATABASE {BARE_DB} TEMPLATE template0")
    server.admin(f"GRANT CREATE ON DATABASE {BARE_DB} TO can_write")
    server.admin("CREATE TABLE t (x int); GRANT ALL ON t TO can_write", dbname=BARE_DB)
    server.admin("GRANT CREATE ON SCHEMA public TO can_write", dbname=BARE_DB)
    server.admin(FINGERPRINT_FUNCTION, dbname=BARE_DB)
    yield BARE_DB
    server.admin(f"DROP DATABASE {BARE_DB} WITH (FORCE)")


def test_python_package_removed(server: Server) -> None:
    python_dir = find_pg_config(server.cluster.major, server.cluster.pg_config).python_dir
    hidden = python_dir.with_name("python-hidden-by-test")
    python_dir.rename(hidden)
    try:
        # A new backend, so the interpreter has not imported pysafe yet.
        for statement in ("CREATE TABLE t_fc (x int)", "DO $$BEGIN END$$"):
            refusal = server.assert_refused("reporting", statement)
            assert refusal.message is not None and "pysafe policy failed" in refusal.message
        # What the C shim decides alone still works.
        server.assert_allowed("reporting", "SELECT count(*) FROM accounts", "SET work_mem = '8MB'")
        writes_as_unrestricted(server, "CREATE TABLE t_fc (x int)", "DO $$BEGIN END$$")
    finally:
        hidden.rename(python_dir)
    server.assert_allowed("reporting", "DO $$BEGIN END$$")


def test_database_without_pysafe_objects(server: Server, bare_database: str) -> None:
    refusal = server.assert_refused("reporting", "CREATE TABLE t2 (x int)", dbname=bare_database)
    assert refusal.message is not None and "pysafe policy unavailable" in refusal.message
    server.assert_refused(
        "reporting",
        "INSERT INTO t VALUES (1)",
        dbname=bare_database,
        message="cannot execute INSERT in a read-only session",
    )
    server.assert_allowed("reporting", "SELECT * FROM t", "BEGIN", "COMMIT", dbname=bare_database)
    with server.connect("writer", bare_database) as conn:
        assert attempt_on(conn, "CREATE TABLE t2 (x int)", "INSERT INTO t2 VALUES (1)") is None


LOOK_ALIKE = """
CREATE SCHEMA IF NOT EXISTS pysafe_internal;
CREATE FUNCTION pysafe_internal.decide_utility(
  statement text, command_tag text, reading text, flags integer)
RETURNS text LANGUAGE sql STABLE AS 'SELECT NULL::text';
"""


def test_look_alike_made_by_a_user_is_never_called(server: Server, bare_database: str) -> None:
    with server.connect("writer", bare_database) as conn:
        assert attempt_on(conn, LOOK_ALIKE) is None
    refusal = server.assert_refused("reporting", "CREATE TABLE t3 (x int)", dbname=bare_database)
    assert refusal.message is not None and "pysafe policy unavailable" in refusal.message


def test_look_alike_made_by_a_superuser_outside_the_extension(
    server: Server, bare_database: str
) -> None:
    server.admin(LOOK_ALIKE, dbname=bare_database)
    refusal = server.assert_refused("reporting", "CREATE TABLE t4 (x int)", dbname=bare_database)
    assert refusal.message is not None and "pysafe policy unavailable" in refusal.message


def test_entry_point_not_owned_by_a_superuser(server: Server, bare_database: str) -> None:
    server.admin("CREATE EXTENSION pysafe CASCADE", dbname=bare_database)
    server.assert_refused(
        "reporting",
        "CREATE TABLE t5 (x int)",
        dbname=bare_database,
        message="cannot execute CREATE TABLE in a read-only session",
    )
    server.admin(
        "ALTER FUNCTION pysafe_internal.decide_utility(text, text, text, integer) OWNER TO writer",
        dbname=bare_database,
    )
    refusal = server.assert_refused("reporting", "CREATE TABLE t5 (x int)", dbname=bare_database)
    assert refusal.message is not None and "pysafe policy unavailable" in refusal.message


def test_multi_statement_strings_are_checked_statement_by_statement(server: Server) -> None:
    """The shim hands the policy each statement's own text, not the whole string."""
    with server.connect("reporting") as conn:
        # Two statements in one simple-protocol string: each is checked on its own.
        refusal = attempt_on(conn, "SELECT 1; CREATE TABLE t6 (x int)")
    assert refusal is not None and refusal.sqlstate == "25006"
    server.assert_allowed("reporting", "SELECT 1; SHOW work_mem; LISTEN c")


def test_entry_point_found_without_schema_privileges(server: Server, bare_database: str) -> None:
    """Revoking USAGE on schema pysafe changes nothing: the shim looks it up exactly."""
    server.admin("CREATE EXTENSION pysafe CASCADE", dbname=bare_database)
    server.admin("REVOKE USAGE ON SCHEMA pysafe FROM PUBLIC", dbname=bare_database)
    server.assert_allowed("reporting", "DO $$BEGIN END$$", dbname=bare_database)
    server.assert_refused(
        "reporting",
        "CREATE TABLE t7 (x int)",
        dbname=bare_database,
        message="cannot execute CREATE TABLE in a read-only session",
    )


def test_database_from_template0_keeps_reads_and_refuses_writes(
    server: Server, bare_database: str
) -> None:
    """Whole cluster: the shim's checks and the cleared built-ins need no objects here."""
    server.assert_allowed(
        "reporting",
        "SELECT random(), now(), md5('x'), count(*) FROM t",
        "BEGIN",
        "DECLARE c CURSOR FOR SELECT * FROM t",
        "FETCH 1 FROM c",
        "CLOSE c",
        "COMMIT",
        "PREPARE q AS SELECT * FROM t",
        "EXECUTE q",
        "EXPLAIN SELECT * FROM t",
        "COPY t TO STDOUT",
        "SHOW transaction_read_only",
        "LISTEN chan",
        dbname=bare_database,
    )
    for statement, message in [
        ("INSERT INTO t VALUES (1)", "cannot execute INSERT in a read-only session"),
        ("SELECT lo_create(0)", FUNCTIONS),
        ("SELECT pg_advisory_lock(1)", FUNCTIONS),
        ("CREATE TABLE t8 (x int)", None),
        ("VACUUM t", None),
        ("SET default_transaction_read_only = off", None),
    ]:
        server.assert_refused("reporting", statement, message=message, dbname=bare_database)
    with server.connect("reporting", bare_database) as conn:
        row = conn.execute("SHOW transaction_read_only").fetchone()
    assert row is not None and row[0] == "on"
