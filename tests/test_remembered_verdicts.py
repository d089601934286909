"""The shim remembers the policy's pure verdicts (installer/verdicts.c).

A statement the policy allowed from the question alone (text, command tag,
the server's reading, the settings, at most a language's trust) is answered
again without Python.  These tests show what is remembered, that a changed
setting, language or policy function gets a fresh answer in an open
session, and that refusals are never remembered.
"""

from __future__ import annotations

import psycopg

from tests.support import READ_ONLY_SQLSTATE, Server, attempt_on

DO_BLOCK = "DO $d$BEGIN PERFORM 1; END$d$"


def remembered(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT pysafe.remembered_verdicts()").fetchone()[0])  # type: ignore[index]


def refused(conn: psycopg.Connection, statement: str) -> bool:
    outcome = attempt_on(conn, statement)
    return outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE


def test_an_allowed_statement_is_remembered_once_per_exact_text(server: Server) -> None:
    with server.connect("reporting") as conn:
        before = remembered(conn)
        conn.execute(DO_BLOCK)
        assert remembered(conn) == before + 1
        conn.execute(DO_BLOCK)
        assert remembered(conn) == before + 1
        conn.execute(DO_BLOCK.replace("PERFORM 1", "PERFORM 2"))
        assert remembered(conn) == before + 2


def test_refusals_and_unrestricted_sessions_remember_nothing(server: Server) -> None:
    with server.connect("reporting") as conn:
        before = remembered(conn)
        for statement in ("CREATE TABLE never (a int)", "DO LANGUAGE plpython3u $$pass$$"):
            assert refused(conn, statement)
            assert refused(conn, statement)
        assert remembered(conn) == before
    with server.connect("writer") as conn:
        conn.execute(DO_BLOCK)
        assert remembered(conn) == 0


def test_temporary_writes_are_never_remembered(settings: Server) -> None:
    settings.set_settings(allow_temp_objects="on")
    with settings.connect("reporting") as conn:
        before = remembered(conn)
        conn.execute("CREATE TEMP TABLE scratch (a int)")
        conn.execute("DROP TABLE scratch")
        conn.execute("CREATE TEMP TABLE scratch (a int)")
        assert remembered(conn) == before


def test_a_changed_setting_is_a_new_question(settings: Server) -> None:
    request = "SET default_transaction_read_only = off"
    with settings.connect("reporting") as conn:
        conn.execute(request)  # ignored with a NOTICE under the default
        conn.execute(request)
        settings.set_settings(read_write_requests="refuse")
        settings.wait_for_setting("read_write_requests", "refuse", conn)
        assert refused(conn, request)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_a_changed_language_is_judged_again(server: Server) -> None:
    """The verdict on a DO block rests on its language's trust: a change forgets it."""
    with server.connect("reporting") as conn:
        conn.execute(DO_BLOCK)
        try:
            server.admin("UPDATE pg_language SET lanpltrusted = false WHERE lanname = 'plpgsql'")
            assert refused(conn, DO_BLOCK)
        finally:
            server.admin("UPDATE pg_language SET lanpltrusted = true WHERE lanname = 'plpgsql'")
        conn.execute(DO_BLOCK)


def test_a_changed_policy_function_is_looked_up_again(server: Server) -> None:
    """Fail closed with a remembered verdict: a policy entry point no longer
    owned by a superuser refuses the very statement it allowed before."""
    entry = "pysafe_internal.decide_utility(text, text, text, integer)"
    with server.connect("reporting") as conn:
        conn.execute(DO_BLOCK)
        assert remembered(conn) > 0
        try:
            server.admin(f"ALTER FUNCTION {entry} OWNER TO writer")
            assert refused(conn, DO_BLOCK)
            assert remembered(conn) == 0
        finally:
            server.admin(f"ALTER FUNCTION {entry} OWNER TO postgres")
        conn.execute(DO_BLOCK)
        assert remembered(conn) == 1
