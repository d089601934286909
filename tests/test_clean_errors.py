"""Errors from pysafe's SQL functions read as PostgreSQL's own.

An error that leaves a PL/Python function as it is reaches the client as
"plpy.Error: ..." or "spiexceptions.Name: ...", with a Python traceback as
its CONTEXT.  The DBA functions written in Python (pysafe.check(),
pysafe.status(), pysafe.function_review()) raise their errors again without
those marks, with their SQLSTATE, detail and hint; the shim does the same
for a cancel during a policy decision and for the policy's error it quotes
in a refusal.  (Standbys: test_replication.py; Python-only mode:
test_python_only.py; cancels during a decision: test_large_statements.py.)
"""

from __future__ import annotations

import uuid

import pytest

from tests.support import (
    READ_ONLY_SQLSTATE,
    Refusal,
    Server,
    assert_without_python_marks,
    attempt_on,
    quote_literal,
)

TOO_DEEP = "SELECT " + "1 + " * 40_000 + "1"


def failure(server: Server, user: str, call: str, *before: str) -> Refusal:
    with server.connect(user) as conn:
        for statement in before:
            conn.execute(statement)
        refusal = attempt_on(conn, call)
    assert refusal is not None, f"{call} succeeded for {user}"
    return refusal


@pytest.mark.parametrize(
    ("user", "call", "sqlstate", "message"),
    [
        (
            "postgres",
            "SELECT * FROM pysafe.check('SELEC 1')",
            "42601",
            'the SQL given to pysafe.check() does not parse: syntax error at or near "SELEC"',
        ),
        (
            "reporting",
            "SELECT * FROM pysafe.check('SELECT 1; SELEC 1')",
            "42601",
            'the SQL given to pysafe.check() does not parse: syntax error at or near "SELEC"',
        ),
        (
            "postgres",
            f"SELECT * FROM pysafe.check('{TOO_DEEP}')",
            "54001",
            "the SQL given to pysafe.check() nests too deeply to check",
        ),
        (
            "postgres",
            "SELECT * FROM pysafe.check('SELECT 1', 'no_such_role')",
            "42704",
            'role "no_such_role" does not exist',
        ),
        (
            "writer",
            "SELECT * FROM pysafe.check('SELECT 1', 'no_such_role')",
            "42704",
            'role "no_such_role" does not exist',
        ),
        (
            "postgres",
            "SELECT pysafe.restrict('no_such_role')",
            "42704",
            'role "no_such_role" does not exist',
        ),
        (
            "postgres",
            "SELECT pysafe.unrestrict('no_such_role')",
            "42704",
            'role "no_such_role" does not exist',
        ),
        (
            "postgres",
            "SELECT pysafe.restrict('boss')",
            "22023",
            'role "boss" is a superuser, and pysafe never restricts superusers',
        ),
        (
            "postgres",
            "SELECT pysafe.unrestrict('analyst')",
            "55006",
            'role "analyst" stays restricted through pysafe.roles (analyst > team_mid > reporting)',
        ),
        (
            "writer",
            "SELECT pysafe.restrict('writer')",
            "42501",
            "pysafe.restrict() is for superusers",
        ),
        ("writer", "SELECT * FROM pysafe.audit()", "42501", "pysafe.audit() is for superusers"),
        (
            "writer",
            "SELECT pysafe.apply_role_defaults()",
            "42501",
            "permission denied for function apply_role_defaults",
        ),
    ],
)
def test_dba_function_errors_carry_no_python_marks(
    server: Server, user: str, call: str, sqlstate: str, message: str
) -> None:
    refusal = failure(server, user, call)
    assert (refusal.sqlstate, refusal.message) == (sqlstate, message), refusal
    assert_without_python_marks(refusal)


def test_a_parse_error_says_where_and_what_to_do(server: Server) -> None:
    refusal = failure(server, "postgres", "SELECT * FROM pysafe.check('SELECT ''ééé''; SELEC 1')")
    assert refusal.detail == "The parser stopped at character 15 of the text.", refusal
    assert refusal.hint is not None and "Pass complete SQL statements" in refusal.hint
    unknown = failure(server, "postgres", "SELECT * FROM pysafe.check('SELECT 1', 'nobody')")
    assert unknown.hint is not None and "pg_roles.rolname" in unknown.hint, unknown
    # The same function still answers good input, for restricted roles too.
    with server.connect("reporting") as conn:
        rows = conn.execute("SELECT verdict FROM pysafe.check('SELECT 1; DELETE FROM accounts')")
        assert rows.fetchall() == [("allowed",), ("refused",)]


def test_check_reads_no_more_than_the_policy_does(server: Server) -> None:
    """pysafe.check() is bounded like the shim's questions (256 kB): longer text is
    an error (54000) before any parsing, for a restricted caller too."""
    within = "SELECT 1 WHERE 1 IN (" + "1," * 100_000 + "1)"
    beyond = "SELECT 1 WHERE 1 IN (" + "1," * 140_000 + "1)"
    for user in ("postgres", "reporting"):
        with server.connect(user) as conn:
            rows = conn.execute("SELECT verdict FROM pysafe.check(%s)", [within]).fetchall()
            assert rows == [("allowed",)]
            refusal = attempt_on(conn, f"SELECT * FROM pysafe.check({quote_literal(beyond)})")
        assert refusal is not None and refusal.sqlstate == "54000", refusal
        assert refusal.message == (
            "the SQL given to pysafe.check() is longer than 256 kB, the most pysafe's policy reads"
        )
        assert_without_python_marks(refusal)


@pytest.mark.parametrize("function", ["pysafe.status()", "pysafe.function_review()"])
def test_an_error_inside_the_python_of_status_and_function_review(
    server: Server, function: str
) -> None:
    """Their catalog query waits for a lock past lock_timeout: the error
    raised inside PL/Python comes out as PostgreSQL's own 55P03."""
    with server.connect() as holder, holder.transaction():
        holder.execute("LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE")
        refusal = failure(
            server, "writer", f"SELECT * FROM {function}", "SET lock_timeout = '100ms'"
        )
    assert (refusal.sqlstate, refusal.message) == (
        "55P03",
        "canceling statement due to lock timeout",
    ), refusal
    assert_without_python_marks(refusal)
    with server.connect("writer") as conn:
        assert conn.execute(f"SELECT count(*) FROM {function}").fetchall()[0][0] > 0


def test_a_refusal_quotes_the_policy_error_without_python_marks(server: Server) -> None:
    """The policy's own catalog query waits past lock_timeout: the shim refuses
    (fail closed) and its detail quotes the error as PostgreSQL wrote it."""
    block = f"DO $d$BEGIN PERFORM 1; END$d$ /* {uuid.uuid4().hex} */"
    before = server.fingerprint()
    with server.connect("reporting") as conn, server.connect() as holder:
        conn.execute("DO $d$BEGIN END$d$")  # the policy's plans and caches are warm
        conn.execute("SET lock_timeout = '100ms'")
        with holder.transaction():
            holder.execute("LOCK TABLE pg_catalog.pg_language IN ACCESS EXCLUSIVE MODE")
            refusal = attempt_on(conn, block)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert refusal.message == "cannot execute DO in a read-only session: pysafe policy failed"
        assert refusal.detail == "The policy raised: canceling statement due to lock timeout"
        assert_without_python_marks(refusal)
        assert attempt_on(conn, block) is None  # the lock gone, the policy allows it
    assert server.fingerprint() == before
    # Control: an unrestricted session runs the block while the lock is held.
    with server.connect("writer") as conn, server.connect() as holder:
        conn.execute("DO $d$BEGIN END$d$")
        conn.execute("SET lock_timeout = '100ms'")
        with holder.transaction():
            holder.execute("LOCK TABLE pg_catalog.pg_language IN ACCESS EXCLUSIVE MODE")
            assert attempt_on(conn, block) is None
