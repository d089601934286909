"""pysafe.allow_temp_objects: restricted sessions may keep temporary tables.

Off by default.  On, a restricted session may create, fill, change, empty
and drop its own temporary tables; everything permanent stays refused, and
nothing permanent is written.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.support import READ_ONLY_SQLSTATE, Server, attempt_on

TEMPORARY_WORK = (
    "CREATE TEMP TABLE scratch (id int, note text)",
    "INSERT INTO scratch VALUES (1, 'a'), (2, 'b')",
    "UPDATE scratch SET note = 'c' WHERE id = 2",
    "DELETE FROM scratch WHERE id = 1",
    "MERGE INTO scratch s USING accounts a ON s.id = a.id"
    " WHEN MATCHED THEN UPDATE SET note = 'm' WHEN NOT MATCHED THEN INSERT VALUES (a.id, 'n')",
    "WITH moved AS (INSERT INTO scratch VALUES (9, 'w') RETURNING id) SELECT * FROM moved",
    "COPY scratch FROM STDIN",
    "CREATE TEMP TABLE totals AS SELECT count(*) AS n FROM accounts",
    "SELECT * INTO TEMP copied FROM accounts",
    "CREATE TABLE pg_temp.qualified (x int GENERATED ALWAYS AS IDENTITY, y int)",
    "INSERT INTO qualified (y) VALUES (1)",
    "SELECT count(*) FROM scratch JOIN totals ON true",
    "TRUNCATE scratch, totals",
    "DROP TABLE scratch, totals",
    "DROP TABLE IF EXISTS copied, never_made",
    "DISCARD TEMP",
)

STILL_REFUSED = [
    ("CREATE TABLE permanent_probe (x int)", None),
    ("CREATE UNLOGGED TABLE unlogged_probe (x int)", None),
    ("CREATE TEMP TABLE child_probe () INHERITS (accounts)", None),
    ("INSERT INTO accounts VALUES (90, 1)", "cannot execute INSERT in a read-only session"),
    ("CREATE TABLE copied_probe AS SELECT * FROM accounts", None),
    ("SELECT * INTO copied_probe FROM accounts", None),
    ("TRUNCATE accounts", None),
    ("DROP TABLE accounts", None),
    ("COPY accounts FROM STDIN", None),
    ("CREATE TEMP VIEW view_probe AS SELECT 1", None),
]


@pytest.fixture
def temp_allowed(settings: Server) -> Iterator[Server]:
    settings.set_settings(allow_temp_objects="on")
    yield settings


def fingerprint_after_warm_up(conn: psycopg.Connection, server: Server) -> str:
    """The fingerprint once the session has its temporary schema.

    That schema appears at the session's first temporary table and stays, so
    it is made before the "before" picture.
    """
    assert attempt_on(conn, "CREATE TEMP TABLE warm_up (x int)", "DROP TABLE warm_up") is None
    return server.fingerprint()


def test_temporary_tables_refused_by_default(server: Server) -> None:
    server.assert_refused("reporting", "CREATE TEMP TABLE scratch (x int)")


def test_temporary_work_allowed_and_nothing_permanent_written(temp_allowed: Server) -> None:
    with temp_allowed.connect("reporting") as conn:
        before = fingerprint_after_warm_up(conn, temp_allowed)
        assert attempt_on(conn, *TEMPORARY_WORK) is None
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        row = conn.execute("SELECT count(*) FROM pg_class WHERE relpersistence = 't'").fetchone()
        assert row == (0,)  # every temporary table is gone again
    assert temp_allowed.fingerprint() == before


def test_temporary_rows_are_really_written(temp_allowed: Server) -> None:
    with temp_allowed.connect("reporting") as conn:
        attempt_on(conn, "CREATE TEMP TABLE kept AS SELECT id FROM accounts")
        attempt_on(conn, "INSERT INTO kept VALUES (-1)")
        rows = conn.execute("SELECT count(*) FROM kept WHERE id = -1").fetchone()
    assert rows == (1,)


@pytest.mark.parametrize(("statement", "message"), STILL_REFUSED, ids=[s for s, _ in STILL_REFUSED])
def test_permanent_writes_still_refused(
    temp_allowed: Server, statement: str, message: str | None
) -> None:
    temp_allowed.assert_refused("reporting", statement, message=message)


def test_mixed_targets_refused(temp_allowed: Server) -> None:
    """One permanent table among temporary ones is enough to refuse."""
    with temp_allowed.connect("reporting") as conn:
        before = fingerprint_after_warm_up(conn, temp_allowed)
        assert attempt_on(conn, "CREATE TEMP TABLE mine (id int, balance int)") is None
        for statement in (
            "DROP TABLE mine, accounts",
            "TRUNCATE mine, accounts",
            "WITH w AS (INSERT INTO accounts VALUES (91, 1)) INSERT INTO mine VALUES (1, 1)",
            "INSERT INTO mine SELECT nextval('ticket_seq'), 1",
            "INSERT INTO mine SELECT lo_create(0), 1",
            "SELECT * FROM accounts FOR UPDATE",
        ):
            refusal = attempt_on(conn, statement)
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (
                statement,
                refusal,
            )
        assert attempt_on(conn, "DROP TABLE mine") is None
    assert temp_allowed.fingerprint() == before


def test_search_path_cannot_pass_a_permanent_table_off_as_temporary(
    temp_allowed: Server,
) -> None:
    """With pg_temp searched last, a bare name means the permanent table."""
    with temp_allowed.connect("reporting") as conn:
        before = fingerprint_after_warm_up(conn, temp_allowed)
        setup = ("SET search_path = public, pg_temp", "CREATE TEMP TABLE accounts (id int)")
        assert attempt_on(conn, *setup) is None
        for statement in ("DROP TABLE accounts", "TRUNCATE accounts"):
            refusal = attempt_on(conn, statement)
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert attempt_on(conn, "DROP TABLE pg_temp.accounts") is None
    assert temp_allowed.fingerprint() == before


def test_executor_checks_alone_still_allow_only_temporary_writes(temp_allowed: Server) -> None:
    temp_allowed.set_settings(force_read_only="off")
    with temp_allowed.connect("reporting") as conn:
        assert (
            attempt_on(conn, "CREATE TEMP TABLE mine (x int)", "INSERT INTO mine VALUES (1)")
            is None
        )
        refusal = attempt_on(conn, "INSERT INTO accounts VALUES (92, 1)")
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
