"""Helpers for the real-cluster tests: roles, objects, settings, write detection."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pysafe.localcluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent

RESTRICTED_ROLES_SETTING = 'reporting, "Report Team", nobody_here'
READ_ONLY_SQLSTATE = "25006"

# Session settings under which the planner hands even a small scan to two
# parallel workers; add "SET parallel_leader_participation = off" to keep the
# leader from running it too.
PARALLEL_PLANS = (
    "SET parallel_setup_cost = 0",
    "SET parallel_tuple_cost = 0",
    "SET min_parallel_table_scan_size = 0",
    "SET max_parallel_workers_per_gather = 2",
)
WORKERS_ONLY = (*PARALLEL_PLANS, "SET parallel_leader_participation = off")

# Every login role of the fixture; all but "writer" and the superusers are restricted.
FIXTURE_SQL = """
CREATE ROLE can_write NOLOGIN;
CREATE ROLE reporting LOGIN IN ROLE can_write;
CREATE ROLE "Report Team" LOGIN IN ROLE can_write;
CREATE ROLE team_mid NOLOGIN IN ROLE reporting;
CREATE ROLE analyst LOGIN IN ROLE team_mid, can_write;
CREATE ROLE writer LOGIN IN ROLE can_write;
CREATE ROLE power NOLOGIN SUPERUSER;
CREATE ROLE reporting_with_power LOGIN IN ROLE reporting, power, can_write;
CREATE ROLE boss LOGIN SUPERUSER IN ROLE reporting;
CREATE ROLE app_login LOGIN SUPERUSER;

GRANT CREATE ON SCHEMA public TO can_write;
GRANT CREATE, TEMPORARY ON DATABASE postgres TO can_write;

CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
INSERT INTO accounts SELECT g, g * 10 FROM generate_series(1, 5) g;
CREATE SEQUENCE ticket_seq;
CREATE VIEW rich AS SELECT * FROM accounts WHERE balance > 20;
GRANT ALL ON ALL TABLES IN SCHEMA public TO can_write;
-- Restricted roles even own these: only pysafe stands between them and a write.
ALTER TABLE accounts OWNER TO can_write;
ALTER VIEW rich OWNER TO can_write;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO can_write;

-- Owned by the superuser: a way out if SECURITY DEFINER escaped the checks.
CREATE FUNCTION definer_insert() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS
  $$BEGIN INSERT INTO accounts VALUES (100, 1); RETURN 1; END$$;
CREATE FUNCTION invoker_insert() RETURNS int LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO accounts VALUES (101, 1); RETURN 1; END$$;
CREATE FUNCTION sql_delete() RETURNS void LANGUAGE sql AS $$DELETE FROM accounts$$;
CREATE PROCEDURE read_only_proc(INOUT total bigint) LANGUAGE plpgsql AS
  $$BEGIN SELECT sum(balance) INTO total FROM accounts; END$$;
CREATE PROCEDURE writing_proc() LANGUAGE plpgsql AS
  $$BEGIN UPDATE accounts SET balance = 0; END$$;

-- C functions with a harmless body (a shim symbol), declared with each volatility.
CREATE FUNCTION c_volatile() RETURNS int LANGUAGE C VOLATILE
  AS '$libdir/pysafe', 'pysafe_shim_settings_flags';
CREATE FUNCTION c_stable() RETURNS int LANGUAGE C STABLE
  AS '$libdir/pysafe', 'pysafe_shim_settings_flags';
CREATE FUNCTION c_volatile_definer() RETURNS int LANGUAGE C VOLATILE SECURITY DEFINER
  AS '$libdir/pysafe', 'pysafe_shim_settings_flags';
CREATE FUNCTION c_volatile_with_set() RETURNS int LANGUAGE C VOLATILE
  SET work_mem = '8MB' AS '$libdir/pysafe', 'pysafe_shim_settings_flags';
CREATE FUNCTION py_volatile() RETURNS int LANGUAGE plpython3u VOLATILE AS $$return 1$$;
CREATE FUNCTION py_stable() RETURNS int LANGUAGE plpython3u STABLE AS $$return 1$$;
-- Untrusted code runs in restricted sessions only once a superuser cleared it.
CREATE FUNCTION py_cleared() RETURNS int LANGUAGE plpython3u STABLE AS $$return 1$$;
SELECT pysafe.clear_function('py_cleared()', 'returns a constant (fixture)');
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;
"""

# What a write could change: every user table and sequence, and the catalogs DDL,
# GRANT, ANALYZE and VACUUM touch.  The test cluster runs without autovacuum, so
# these stay put unless someone writes.  Created by the superuser in each database.
FINGERPRINT_FUNCTION = r"""
CREATE FUNCTION public.test_fingerprint() RETURNS text LANGUAGE plpgsql AS $fp$
DECLARE
  rel regclass;
  part text;
  acc text := '';
BEGIN
  FOR rel IN
    SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'S', 'm') AND n.nspname NOT LIKE 'pg\_%'
      AND n.nspname <> 'information_schema'
    ORDER BY c.oid::regclass::text
  LOOP
    EXECUTE format('SELECT md5(coalesce(string_agg(row(t.*)::text, %L ORDER BY row(t.*)::text),'
                   ' %L)) FROM %s t', '|', '', rel) INTO part;
    acc := acc || rel::text || '=' || part || ';';
  END LOOP;
  RETURN md5(concat_ws('|', acc,
    (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_proc),
    (SELECT count(*) FROM pg_namespace), (SELECT count(*) FROM pg_largeobject_metadata),
    (SELECT count(*) FROM pg_db_role_setting), (SELECT count(*) FROM pg_authid),
    (SELECT count(*) FROM pg_auth_members), (SELECT count(*) FROM pg_statistic),
    (SELECT string_agg(relname || ':' || coalesce(relacl::text, '') || ':' || relfrozenxid
                       || ':' || relallvisible, ',' ORDER BY relname)
       FROM pg_class WHERE relnamespace = 'public'::regnamespace)));
END
$fp$;
REVOKE ALL ON FUNCTION public.test_fingerprint() FROM PUBLIC;
"""
FINGERPRINT_SQL = "SELECT public.test_fingerprint()"


@dataclass
class Refusal:
    sqlstate: str | None
    message: str | None
    detail: str | None = None
    hint: str | None = None
    context: str | None = None


# What PL/Python leaves on an error that leaves a Python function as it is:
# "plpy.Error: " or "spiexceptions.Name: " before the message, a traceback
# and "PL/Python function" lines in its CONTEXT.
PYTHON_MARKS = ("plpy.", "spiexceptions", "Traceback", "PL/Python")


def assert_without_python_marks(refusal: Refusal | None) -> None:
    """An error a DBA or client reads as PostgreSQL's own: no PL/Python marks."""
    assert refusal is not None
    for text in (refusal.message, refusal.detail, refusal.hint, refusal.context):
        for mark in PYTHON_MARKS:
            assert mark not in (text or ""), refusal


class Server:
    """The shared cluster, with helpers the tests use."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def connect(self, user: str = "postgres", dbname: str = "postgres") -> psycopg.Connection:
        return self.cluster.connect(user=user, dbname=dbname)

    def admin(self, statement: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        with self.connect(dbname=dbname) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def fingerprint(self, dbname: str = "postgres") -> str:
        return str(self.admin(FINGERPRINT_SQL, dbname)[0][0])

    # -- settings --------------------------------------------------------

    def set_settings(self, **values: str) -> None:
        """ALTER SYSTEM SET pysafe.<name> for each, reload, wait until new sessions see it."""
        with self.connect() as conn:
            for name, value in values.items():
                conn.execute(f"ALTER SYSTEM SET pysafe.{name} = {quote_literal(value)}")
            conn.execute("SELECT pg_reload_conf()")
        for name, value in values.items():
            self.wait_for_setting(name, value)

    def reset_settings(self) -> None:
        defaults = {
            "block_dml": "on",
            "block_ddl": "on",
            "block_c_functions": "on",
            "block_all_c_functions": "off",
            "force_read_only": "on",
            "lock_session_authorization": "off",
            "allow_temp_objects": "off",
            "read_write_requests": "ignore",
            "log_refusals": "on",
            "log_statement_length": "200",
        }
        with self.connect() as conn:
            for name in defaults:
                conn.execute(f"ALTER SYSTEM RESET pysafe.{name}")
            conn.execute("SELECT pg_reload_conf()")
        for name, value in defaults.items():
            self.wait_for_setting(name, value)
        self.set_settings(roles=RESTRICTED_ROLES_SETTING)

    def wait_for_setting(
        self, name: str, value: str, conn: psycopg.Connection | None = None
    ) -> None:
        deadline = time.monotonic() + 10
        while True:
            if conn is None:
                with self.connect() as fresh:
                    current = fresh.execute(f"SHOW pysafe.{name}").fetchone()
            else:
                current = conn.execute(f"SHOW pysafe.{name}").fetchone()
            if current is not None and current[0] == value:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"pysafe.{name} is {current}, expected {value}")
            time.sleep(0.05)

    # -- trying statements -----------------------------------------------

    def attempt(self, user: str, *statements: str, dbname: str = "postgres") -> Refusal | None:
        """Run statements in one session; the first error, or None if all succeeded."""
        with self.connect(user, dbname) as conn:
            return attempt_on(conn, *statements)

    def assert_refused(
        self, user: str, *statements: str, message: str | None = None, dbname: str = "postgres"
    ) -> Refusal:
        """The statements fail with 25006 (and ``message``) and nothing is written."""
        before = self.fingerprint(dbname)
        refusal = self.attempt(user, *statements, dbname=dbname)
        assert refusal is not None, f"{statements} succeeded for {user}"
        assert refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        if message is not None:
            assert refusal.message == message, refusal
        assert self.fingerprint(dbname) == before, f"{statements} wrote something"
        return refusal

    def assert_allowed(self, user: str, *statements: str, dbname: str = "postgres") -> None:
        refusal = self.attempt(user, *statements, dbname=dbname)
        assert refusal is None, f"{statements} refused for {user}: {refusal}"


def attempt_on(conn: psycopg.Connection, *statements: str) -> Refusal | None:
    try:
        for statement in statements:
            if statement.upper().endswith("FROM STDIN"):
                with conn.cursor().copy(statement) as copy:
                    copy.write_row((70, 1))
                continue
            if statement.upper().endswith("TO STDOUT"):
                with conn.cursor().copy(statement) as copy:
                    for _ in copy:
                        pass
                continue
            cursor = conn.execute(statement)
            if cursor.description:
                cursor.fetchall()
    except psycopg.Error as error:
        diag = error.diag
        return Refusal(
            diag.sqlstate,
            diag.message_primary,
            diag.message_detail,
            diag.message_hint,
            diag.context,
        )
    return None


def assert_each_refused(
    conn: psycopg.Connection, statements: tuple[str, ...], message: str | None = None
) -> None:
    """On one open session, every statement is refused with 25006 (and ``message``)."""
    for statement in statements:
        refusal = attempt_on(conn, statement)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (statement, refusal)
        if message is not None:
            assert refusal.message == message, (statement, refusal)


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def create_fixture_objects(server: Server) -> None:
    with server.connect() as conn:
        conn.execute(FIXTURE_SQL)
        conn.execute(FINGERPRINT_FUNCTION)


def writes_as_unrestricted(server: Server, *statements: str) -> None:
    """Control: the same statements succeed for "writer" (same grants, not restricted).

    Run in a transaction that is rolled back, unless a statement cannot run in
    one; this shows the refusal a test checks comes from pysafe, not from ACLs.
    """
    with server.connect("writer") as conn:
        conn.autocommit = False
        refusal = attempt_on(conn, *statements)
        conn.rollback()
    if refusal is not None and "cannot run inside a transaction block" in (refusal.message or ""):
        with server.connect("writer") as conn:
            refusal = attempt_on(conn, *statements)
    if refusal is not None:
        pytest.fail(f"control failed: {statements} refused for writer: {refusal}")


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """python -m pysafe ARGS, from this checkout."""
    return subprocess.run(
        [sys.executable, "-m", "pysafe", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
        cwd=REPO,
    )


def run_psql(cluster: LocalCluster, conninfo: str, *args: str) -> subprocess.CompletedProcess[str]:
    """psql, a real client, with ARGS on CONNINFO (no .psqlrc)."""
    return subprocess.run(
        [str(cluster.bindir / "psql"), "-X", conninfo, *args],
        capture_output=True,
        text=True,
        check=False,
    )


def pg_config(cluster: LocalCluster) -> tuple[str, str]:
    """The binaries under test may not be where install looks by default."""
    return ("--pg-config", str(cluster.pg_config))


def install_python_only(cluster: LocalCluster) -> subprocess.CompletedProcess[str]:
    """Install pysafe without the shim, through the CLI (so --no-shim itself is tested)."""
    result = run_cli("install", "--dsn", cluster.dsn(), "--no-shim", *pg_config(cluster))
    assert result.returncode == 0, result.stderr
    return result
