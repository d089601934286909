"""The attacker's tests: each route an independent review found, and variants.

Every test tries the route as a restricted role, checks that nothing was
written (or run, or terminated), and runs a control as an unrestricted role
where the same thing succeeds.  The classes of route:

1. functions called inside parallel workers;
2. a statement the policy reads differently from the server;
3. set_config() and friends on protected settings;
4. leaving an identity pysafe.lock_session_authorization locks;
5. statements deep enough to crash a parser;
6. built-ins that assign transaction IDs;
7. catalog lookups steered by the session's own operators;
8. replication connections;
9. EXPLAIN options read the wrong way;
10. the shim trusting a "+temporary" or malformed reply.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from pysafe.policy import messages
from pysafe.policy.parsing import MAX_DECIDED_BYTES
from tests.support import (
    READ_ONLY_SQLSTATE,
    WORKERS_ONLY,
    Server,
    assert_each_refused,
    attempt_on,
    run_psql,
    writes_as_unrestricted,
)

INSERT = "INSERT INTO accounts VALUES (77, 1)"


def scratch_path(name: str) -> Path:
    """A path the server (running as postgres) can write and the test can read."""
    folder = Path(tempfile.gettempdir()) / "pysafe-attacks"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o777)
    path = folder / name
    path.unlink(missing_ok=True)
    return path


def refused_on(conn: psycopg.Connection, *statements: str) -> None:
    refusal = attempt_on(conn, *statements)
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (statements, refusal)


# ---------------------------------------------------------------------------
# 1. Parallel workers
# ---------------------------------------------------------------------------

PARALLEL_FIXTURE = """
CREATE TABLE IF NOT EXISTS par_big AS SELECT g AS id FROM generate_series(1, 20000) g;
GRANT SELECT ON par_big TO can_write;
CREATE OR REPLACE FUNCTION par_terminate(target int) RETURNS boolean
  LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS
  $$BEGIN RETURN pg_terminate_backend(target); END$$;
CREATE OR REPLACE FUNCTION py_write_file(path text) RETURNS int
  LANGUAGE plpython3u VOLATILE PARALLEL SAFE AS
  $$open(path, "w").write("escaped"); return 1$$;
-- Trusted wrappers: the leader binds them, the worker binds what they call.
CREATE OR REPLACE FUNCTION par_write_file(path text) RETURNS int
  LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$BEGIN RETURN py_write_file(path); END$$;
CREATE OR REPLACE FUNCTION par_lo() RETURNS oid
  LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$BEGIN RETURN lo_create(0); END$$;
ALTER TABLE par_big OWNER TO can_write;
ALTER FUNCTION par_terminate(int) OWNER TO can_write;
GRANT EXECUTE ON FUNCTION par_terminate(int), par_write_file(text), par_lo(),
  py_write_file(text) TO PUBLIC;
ANALYZE par_big;
"""


@pytest.fixture(scope="module")
def parallel_objects(server: Server) -> Iterator[None]:
    server.admin(PARALLEL_FIXTURE)
    yield
    server.admin("DROP TABLE par_big; DROP FUNCTION par_terminate(int), par_write_file(text)")
    server.admin("DROP FUNCTION par_lo(), py_write_file(text)")


def runs_in_a_worker(server: Server, call: str) -> None:
    """The plan really hands the call to a parallel worker."""
    with server.connect() as conn:
        for setting in WORKERS_ONLY:
            conn.execute(setting)
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(f"EXPLAIN (VERBOSE) SELECT {call} FROM par_big WHERE id = 5")
        )
    assert "Gather" in plan and "Workers Planned" in plan, plan


@pytest.mark.usefixtures("parallel_objects")
def test_parallel_worker_cannot_end_another_session(server: Server) -> None:
    runs_in_a_worker(server, "par_terminate(0)")
    with server.connect("writer") as victim:
        pid = victim.info.backend_pid
        with server.connect("reporting") as conn:
            for setting in WORKERS_ONLY:
                conn.execute(setting)
            refused_on(conn, f"SELECT par_terminate({pid}) FROM par_big WHERE id = 5")
            refused_on(conn, f"SELECT par_terminate({pid})")  # directly, too
        assert victim.execute("SELECT 1").fetchone() == (1,)
    # Control: the same query as an unrestricted role of the same grants ends it.
    with server.connect("writer") as victim:
        pid = victim.info.backend_pid
        with server.connect("writer") as conn:
            for setting in WORKERS_ONLY:
                conn.execute(setting)
            row = conn.execute(f"SELECT par_terminate({pid}) FROM par_big WHERE id = 5")
            assert row.fetchone() == (True,)


@pytest.mark.usefixtures("parallel_objects")
def test_parallel_worker_cannot_call_untrusted_or_refused_functions(server: Server) -> None:
    target = scratch_path("parallel-file")
    runs_in_a_worker(server, f"par_write_file('{target}')")
    before = server.fingerprint()
    with server.connect("reporting") as conn:
        for setting in WORKERS_ONLY:
            conn.execute(setting)
        refused_on(conn, f"SELECT par_write_file('{target}') FROM par_big WHERE id = 5")
        refused_on(conn, "SELECT par_lo() FROM par_big WHERE id = 5")
    assert not target.exists()
    assert server.fingerprint() == before
    with server.connect("writer") as conn:
        for setting in WORKERS_ONLY:
            conn.execute(setting)
        conn.execute(f"SELECT par_write_file('{target}') FROM par_big WHERE id = 5").fetchall()
    assert target.read_text() == "escaped"


@pytest.mark.usefixtures("parallel_objects")
def test_parallel_reads_still_work(server: Server) -> None:
    with server.connect("reporting") as conn:
        for setting in WORKERS_ONLY:
            conn.execute(setting)
        plan = [str(r[0]) for r in conn.execute("EXPLAIN ANALYZE SELECT count(*) FROM par_big")]
        assert any("Workers Launched: 2" in line for line in plan), plan
        row = conn.execute("SELECT count(*), max(id), sum(random()) > 0 FROM par_big").fetchone()
        assert row == (20000, 20000, True)


# ---------------------------------------------------------------------------
# 2. One reading: the policy judges the statement the server runs
# ---------------------------------------------------------------------------


def scs_off_ways(server: Server, user: str) -> list[psycopg.Connection]:
    """Sessions of ``user`` with standard_conforming_strings off: SET, set_config, options."""
    by_set = server.connect(user)
    by_set.execute("SET standard_conforming_strings = off")
    by_function = server.connect(user)
    by_function.execute("SELECT set_config('standard_conforming_strings', 'off', false)")
    by_option = psycopg.connect(
        server.cluster.dsn(user, options="-c standard_conforming_strings=off"), autocommit=True
    )
    return [by_set, by_function, by_option]


def test_backslash_quote_tricks_run_no_program(server: Server) -> None:
    target = scratch_path("scs-program")
    tricks = [
        f"COPY (SELECT '\\'') TO PROGRAM $p$touch {target}$p$ --') TO STDOUT\n",
        f"COPY (SELECT E'\\'', '\\'') TO PROGRAM 'touch {target}' --') TO STDOUT\n",
        f"COPY (SELECT '\\\\'') TO '{target}' --') TO STDOUT\n",
    ]
    before = server.fingerprint()
    for conn in scs_off_ways(server, "reporting"):
        with conn:
            assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("off",)
            for trick in tricks[:2]:
                refused_on(conn, trick)
            # Whatever the server makes of the last one, it writes no file.
            assert attempt_on(conn, tricks[2]) is not None
    assert not target.exists()
    assert server.fingerprint() == before


def test_settings_changed_inside_one_string_change_no_reading(server: Server) -> None:
    """The server parses a whole simple-query string before running any of it."""
    target = scratch_path("scs-multi")
    tricks = [
        # Parsed with the setting off, run after it was switched on.
        (
            "off",
            "SET standard_conforming_strings = on; "
            f"COPY (SELECT '\\'') TO PROGRAM 'touch {target}' --') TO STDOUT\n",
        ),
        # Parsed with it on, though the string switches it off first.
        (
            "on",
            "SET standard_conforming_strings = off; "
            f"COPY (SELECT '\\'') TO PROGRAM 'touch {target}' --') TO STDOUT\n",
        ),
    ]
    for setting, trick in tricks:
        with server.connect("reporting") as conn:
            conn.execute(f"SET standard_conforming_strings = {setting}")
            refusal = attempt_on(conn, trick)
            assert refusal is not None, trick
    assert not target.exists()


def test_backslash_quote_select_into_makes_no_permanent_table(settings: Server) -> None:
    settings.set_settings(allow_temp_objects="on")
    trick = "SELECT 1 AS a, '\\'' INTO sneaky --' INTO TEMP tt\n"
    before = settings.fingerprint()
    for conn in scs_off_ways(settings, "reporting"):
        with conn:
            refused_on(conn, trick)
    assert settings.fingerprint() == before
    assert settings.admin("SELECT to_regclass('public.sneaky')") == [(None,)]


# Statements with quoting and comment tricks.  Under every lexer setting
# the server may use, each must either be refused, or run exactly what the
# policy judged (readings equal): reads only, so nothing may be written.
READING_CORPUS = [
    "SET application_name = 'a\\'; SET x = ''b'",
    "SET search_path = '\\', public",
    "BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY",
    "SET TRANSACTION READ ONLY",
    "EXPLAIN (ANALYZE) SELECT '\\''",
    "EXPLAIN (ANALYZE) SELECT '\\' -- ' ",
    "EXPLAIN ANALYZE SELECT E'\\'' AS a, '\\\\' AS b",
    "DO $$BEGIN PERFORM '\\'; END$$",
    "DO E'BEGIN PERFORM 1; END'",
    "DO 'BEGIN PERFORM ''\\''; END'",
    "COPY (SELECT '\\'') TO STDOUT --') TO STDOUT",
    "SET TIME ZONE 'UTC'",
    "LOCK TABLE accounts IN ACCESS SHARE MODE",
    "DISCARD PLANS",
    "SET LOCAL work_mem = '64kB'",
    "SET application_name = '表\\'",
    "SET application_name TO 'ソ'",
]

LEXER_SETTINGS = [
    {"standard_conforming_strings": scs, "backslash_quote": bq, "escape_string_warning": esw}
    for scs in ("on", "off")
    for bq in ("on", "off", "safe_encoding")
    for esw in ("on", "off")
]


def test_policy_and_server_read_the_same_statement(server: Server) -> None:
    """The differential test: quoting tricks under every lexer setting and encoding."""
    before = server.fingerprint()
    outcomes: dict[str, set[str]] = {}
    for settings in LEXER_SETTINGS:
        for encoding in ("UTF8", "SJIS", "BIG5", "GBK"):
            options = " ".join(f"-c {k}={v}" for k, v in settings.items())
            dsn = server.cluster.dsn(
                "reporting", options=f"{options} -c client_encoding={encoding}"
            )
            with psycopg.connect(dsn, autocommit=True) as conn:
                for statement in READING_CORPUS:
                    try:
                        refusal = attempt_on(conn, statement)
                    except UnicodeEncodeError:
                        continue  # not representable in this client encoding
                    if conn.info.transaction_status != TransactionStatus.IDLE:
                        conn.execute("ROLLBACK")
                    outcome = "ran" if refusal is None else refusal.sqlstate or "?"
                    outcomes.setdefault(statement, set()).add(outcome)
                    # Never anything but a clean run, a refusal, or the server's own error.
                    server_errors = ("42601", "22P02", "22P06", "22025", "25P01")
                    assert outcome in ("ran", READ_ONLY_SQLSTATE, *server_errors), (
                        statement,
                        settings,
                        encoding,
                        refusal,
                    )
    assert server.fingerprint() == before
    # With standard strings, what has no trick in it runs.
    for statement in ("SET TIME ZONE 'UTC'", "DISCARD PLANS", "SET TRANSACTION READ ONLY"):
        assert "ran" in outcomes[statement], outcomes[statement]


def test_readings_agree_for_ordinary_statements(server: Server) -> None:
    """No false refusals: the Python-path statements clients send, read alike."""
    ordinary = [
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        "COMMIT",
        "START TRANSACTION READ ONLY, DEFERRABLE",
        "ROLLBACK",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET default_transaction_read_only = on",
        "SET transaction_read_only TO true",
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM accounts",
        "EXPLAIN ANALYZE WITH x AS (SELECT 1) SELECT * FROM x",
        "EXPLAIN (ANALYZE false) CREATE TABLE explained AS SELECT 1",
        "DO $$BEGIN PERFORM 1; END$$",
        "DO LANGUAGE plpgsql $$BEGIN PERFORM 1; END$$",
        "COPY (SELECT * FROM accounts) TO STDOUT",
        "BEGIN",
        "LOCK TABLE accounts IN ACCESS SHARE MODE",
        "COMMIT",
        "RESET ALL",
        "DISCARD ALL",
    ]
    with server.connect("reporting") as conn:
        for statement in ordinary:
            assert attempt_on(conn, statement) is None, statement


# ---------------------------------------------------------------------------
# 3. Protected settings: every path
# ---------------------------------------------------------------------------

SETTING_ROUTES = [
    "SELECT set_config('pysafe.roles', '', false)",
    "SELECT set_config('pysafe.' || 'block_dml', 'off', false)",
    "SELECT set_config('pysafe.force_read_only', 'off', true)",
    "DO $$BEGIN PERFORM set_config('pysafe.roles', '', false); END$$",
    "DO $$BEGIN EXECUTE 'SET pysafe.roles = ''''' ; END$$",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('transaction_read_only', 'off', true)",
    "SELECT set_config('transaction_' || 'read_only', 'off', false)",
    "DO $$BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); END$$",
    "SELECT definer_set_config('pysafe.roles', '')",
    "SELECT definer_set_config('default_transaction_read_only', 'off')",
    "SELECT read_write_clause()",
]

SETTING_FIXTURE = """
CREATE OR REPLACE FUNCTION definer_set_config(name text, value text) RETURNS text
  LANGUAGE sql SECURITY DEFINER AS $$SELECT set_config(name, value, false)$$;
CREATE OR REPLACE FUNCTION read_write_clause() RETURNS int
  LANGUAGE sql SET default_transaction_read_only = off AS $$SELECT 1$$;
GRANT EXECUTE ON FUNCTION definer_set_config(text, text), read_write_clause() TO PUBLIC;
"""


@pytest.fixture(scope="module")
def setting_functions(server: Server) -> Iterator[None]:
    server.admin(SETTING_FIXTURE)
    yield
    server.admin("DROP FUNCTION definer_set_config(text, text), read_write_clause()")


@pytest.mark.usefixtures("setting_functions")
@pytest.mark.parametrize("route", SETTING_ROUTES)
@pytest.mark.parametrize(
    "role_switch", [None, "SET ROLE power", "SELECT set_config('role', 'power', false)"]
)
def test_protected_settings_cannot_be_changed(
    server: Server, route: str, role_switch: str | None
) -> None:
    """Also after SET ROLE to a superuser role the login is a member of."""
    before = server.fingerprint()
    with server.connect("reporting_with_power") as conn:
        if role_switch:
            refused_on(conn, role_switch)  # the superuser role is out of reach
        refusal = attempt_on(conn, route)
        if "pysafe." in route:
            # PostgreSQL's own privilege check may come first.
            assert refusal is not None and refusal.sqlstate in (READ_ONLY_SQLSTATE, "42501")
        else:
            # A read-write request: ignored by default (the value stays on, below),
            # refused under read_write_requests = refuse (test_read_write_requests.py).
            assert refusal is None or refusal.sqlstate in (READ_ONLY_SQLSTATE, "42501")
        conn.execute("RESET ROLE")
        refused_on(conn, INSERT)
        row = conn.execute(
            "SELECT current_setting('pysafe.roles'), current_setting('pysafe.block_dml'),"
            " current_setting('default_transaction_read_only')"
        ).fetchone()
        assert row is not None and row[1:] == ("on", "on") and row[0] != ""
    assert server.fingerprint() == before


def test_restricted_sessions_cannot_become_superusers(server: Server) -> None:
    """SET ROLE to a superuser role would reach every superuser-only setting and function."""
    routes = (
        "SET ROLE power",
        "SET LOCAL ROLE power",
        "SELECT set_config('role', 'power', false)",
        "DO $$BEGIN PERFORM set_config('role', 'power', true); END$$",
    )
    with server.connect("reporting_with_power") as conn:
        assert_each_refused(conn, routes)
        assert conn.execute("SELECT current_user").fetchone() == ("reporting_with_power",)
        refusal = attempt_on(conn, "SELECT set_config('log_min_messages', 'panic', false)")
        assert refusal is not None and refusal.sqlstate == "42501"  # PostgreSQL's own check
        assert attempt_on(conn, "SET ROLE can_write", "RESET ROLE") is None  # others: yes
    # Control: an unrestricted member of the same superuser role.
    server.admin("CREATE ROLE free_power LOGIN IN ROLE power")
    try:
        with server.connect("free_power") as conn:
            assert attempt_on(conn, *routes[:1], "SET log_min_messages = warning") is None
    finally:
        server.admin("DROP ROLE free_power")


@pytest.mark.parametrize("how", ["restrict", "roles"])
def test_a_session_restricted_while_in_a_superuser_role_ends(settings: Server, how: str) -> None:
    """A superuser role set before the restriction is not kept past it."""
    settings.admin("CREATE ROLE late_power LOGIN IN ROLE power, can_write")
    try:
        with settings.connect("late_power") as conn:
            conn.execute("SET ROLE power")
            if how == "restrict":
                settings.admin("SELECT pysafe.restrict('late_power')")
            else:
                settings.set_settings(roles="reporting, late_power")
            before = settings.fingerprint()
            with pytest.raises(psycopg.Error) as raised:
                conn.execute("SET log_min_messages = panic")
            assert raised.value.sqlstate == READ_ONLY_SQLSTATE
            assert conn.closed or conn.broken
            assert settings.fingerprint() == before
        # Reconnected, it is restricted and cannot take the role again.
        with settings.connect("late_power") as conn:
            refused_on(conn, "SET ROLE power")
    finally:
        if how == "restrict":
            settings.admin("SELECT pysafe.unrestrict('late_power')")
        settings.admin("DROP ROLE late_power")


def test_protected_settings_from_role_database_and_startup(server: Server) -> None:
    """pysafe.* are cluster-wide: ALTER ROLE/DATABASE SET and startup options are refused."""
    for statement in (
        "ALTER ROLE reporting SET pysafe.roles = ''",
        "ALTER DATABASE postgres SET pysafe.block_dml = off",
        "ALTER ROLE ALL SET pysafe.force_read_only = off",
    ):
        with server.connect() as conn:  # even for a superuser
            refusal = attempt_on(conn, statement)
        assert refusal is not None and refusal.sqlstate == "55P02", (statement, refusal)
    # Startup options: a restricted login may not set them; a superuser's is refused too.
    for user in ("reporting", "reporting_with_power", "boss"):
        dsn = server.cluster.dsn(user, options="-c pysafe.block_dml=off")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn).close()
    # A startup request for read-write is a read-write request: kept on (the default).
    dsn = server.cluster.dsn("reporting", options="-c default_transaction_read_only=off")
    with psycopg.connect(dsn) as conn:
        assert conn.info.parameter_status("default_transaction_read_only") == "on"
    # Superusers log in as usual, and ALTER SYSTEM still sets them.
    with server.connect("boss") as conn:
        assert conn.execute("SHOW pysafe.block_dml").fetchone() == ("on",)


def test_unrestricted_roles_set_read_only_settings_freely(server: Server) -> None:
    with server.connect("writer") as conn:
        assert (
            attempt_on(
                conn,
                "SELECT set_config('default_transaction_read_only', 'off', false)",
                "SET transaction_read_only = off",
                "BEGIN READ WRITE",
                "COMMIT",
            )
            is None
        )
    with server.connect() as conn:
        assert attempt_on(conn, "SELECT set_config('transaction_read_only', 'off', true)") is None


# ---------------------------------------------------------------------------
# 4. A locked SET SESSION AUTHORIZATION, every way back
# ---------------------------------------------------------------------------


def switched_session(server: Server) -> psycopg.Connection:
    conn = server.connect("app_login")
    conn.execute("SET SESSION AUTHORIZATION analyst")
    assert conn.execute("SELECT session_user").fetchone() == ("analyst",)
    return conn


@pytest.mark.parametrize(
    "escape",
    [
        "SELECT set_config('session_authorization', 'app_login', false)",
        "SELECT set_config('session_' || 'authorization', 'app_login', true)",
        "DO $$BEGIN PERFORM set_config('session_authorization', 'app_login', false); END$$",
        "SELECT definer_set_config('session_authorization', 'app_login')",
    ],
)
@pytest.mark.usefixtures("setting_functions")
def test_locked_identity_cannot_be_set_back(settings: Server, escape: str) -> None:
    settings.set_settings(lock_session_authorization="on")
    before = settings.fingerprint()
    with switched_session(settings) as conn:
        refusal = attempt_on(conn, escape)
        # PostgreSQL itself refuses it inside a SECURITY DEFINER function.
        assert refusal is not None and refusal.sqlstate in (READ_ONLY_SQLSTATE, "42501"), refusal
        refused_on(conn, INSERT)
        assert conn.execute("SELECT session_user").fetchone() == ("analyst",)
    assert settings.fingerprint() == before


@pytest.mark.parametrize(
    "escape",
    [
        ("SELECT set_config('session_authorization', NULL, false)",),
        ("SELECT set_config('session_authorization', NULL, false), 1",),
    ],
)
def test_reset_paths_end_the_session(settings: Server, escape: tuple[str, ...]) -> None:
    """Resets take no check hook: the session ends before anything runs as the login."""
    settings.set_settings(lock_session_authorization="on")
    before = settings.fingerprint()
    with switched_session(settings) as conn:
        refusal = attempt_on(conn, *escape, INSERT)
        assert refusal is not None
        assert conn.closed or conn.broken or attempt_on(conn, "SELECT 1") is not None
    assert settings.fingerprint() == before


def test_reset_path_runs_nothing_more_in_the_same_statement(settings: Server) -> None:
    """The reset ends the session at once: later expressions never run as the login."""
    settings.set_settings(lock_session_authorization="on")
    with switched_session(settings) as conn, pytest.raises(psycopg.Error) as raised:
        conn.execute(
            "SELECT set_config('session_authorization', NULL, false),"
            " current_setting('data_directory'), session_user"
        ).fetchall()
    assert raised.value.sqlstate == READ_ONLY_SQLSTATE
    assert conn.closed or conn.broken
    log = settings.cluster.log_path.read_text(errors="replace")
    assert "left the restricted identity locked by pysafe.lock_session_authorization" in log


def test_set_local_session_authorization_ends_at_commit(settings: Server) -> None:
    settings.set_settings(lock_session_authorization="on")
    before = settings.fingerprint()
    with settings.connect("app_login") as conn:
        conn.execute("BEGIN")
        conn.execute("SET LOCAL SESSION AUTHORIZATION analyst")
        # What the injected text does: a statement as analyst, then COMMIT; write.
        conn.execute("SELECT count(*) FROM accounts")
        refusal = attempt_on(conn, "COMMIT", INSERT)
        assert refusal is not None
    assert settings.fingerprint() == before
    # Without the lock, the app's SET LOCAL pattern works as before.
    settings.set_settings(lock_session_authorization="off")
    with settings.connect("app_login") as conn:
        conn.execute("BEGIN")
        conn.execute("SET LOCAL SESSION AUTHORIZATION analyst")
        conn.execute("SELECT count(*) FROM accounts")
        conn.execute("COMMIT")
        assert conn.execute("SELECT session_user").fetchone() == ("app_login",)


# ---------------------------------------------------------------------------
# 5. No input crashes the server
# ---------------------------------------------------------------------------

DEEP = {
    "100k plus": "SELECT " + "+".join(["1"] * 100_000),
    "100k concatenation": "SELECT " + "||".join(["'a'"] * 100_000),
    "30k UNION ALL": " UNION ALL ".join(["SELECT 1"] * 30_000),
    "10k parentheses": "SELECT " + "(" * 10_000 + "1" + ")" * 10_000,
}
DEEP_WRAPPERS = [
    "EXPLAIN ANALYZE {q}",
    "COPY ({q}) TO '/tmp/pysafe-deep'",
    "CREATE TABLE deep AS {q}",
    "DECLARE c CURSOR WITH HOLD FOR {q}",
]


def server_alive_and_never_signalled(server: Server) -> None:
    assert server.admin("SELECT 1") == [(1,)]
    log = server.cluster.log_path.read_text(errors="replace")
    assert "terminated by signal" not in log


@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deep_statements_end_in_an_error(server: Server, shape: str) -> None:
    with server.connect("reporting") as conn:
        for wrapper in DEEP_WRAPPERS:
            refusal = attempt_on(conn, wrapper.format(q=DEEP[shape]))
            assert refusal is not None and refusal.sqlstate in (
                READ_ONLY_SQLSTATE,
                "54001",
                "42601",
            ), (wrapper, refusal)
        refusal = attempt_on(conn, f"SELECT * FROM pysafe.check({quote(DEEP[shape])})")
        # check() reads no more than the policy does: longer text ends before parsing.
        expected = ("54000",) if len(DEEP[shape]) > MAX_DECIDED_BYTES else ("54001", "42601")
        assert refusal is not None and refusal.sqlstate in expected, refusal
    server_alive_and_never_signalled(server)


def quote(text: str) -> str:
    return "$deep$" + text + "$deep$"


# ---------------------------------------------------------------------------
# 6. Transaction IDs
# ---------------------------------------------------------------------------

XID_NOW = "SELECT txid_snapshot_xmax(txid_current_snapshot())"


def next_xid(server: Server) -> int:
    return int(str(server.admin(XID_NOW)[0][0]))


def test_restricted_sessions_consume_no_transaction_ids(server: Server) -> None:
    start = next_xid(server)
    with server.connect("reporting") as conn:
        for _ in range(5000):
            refused_on(conn, "SELECT txid_current()")
        for _ in range(5000):
            refused_on(conn, "SELECT pg_current_xact_id()")
        refused_on(
            conn, "DO $$BEGIN FOR i IN 1..10000 LOOP PERFORM txid_current(); END LOOP; END$$"
        )
        refused_on(conn, "SELECT txid_current() FROM generate_series(1, 10)")
        # What reads need stays allowed.
        row = conn.execute(
            "SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()"
        ).fetchone()
        assert row == (None, None)
    assert next_xid(server) - start <= 3
    with server.connect("writer") as conn:
        assert conn.execute("SELECT txid_current() > 0").fetchone() == (True,)


# ---------------------------------------------------------------------------
# 7. Lookups no role can steer
# ---------------------------------------------------------------------------

HIJACK_FIXTURE = """
CREATE SCHEMA IF NOT EXISTS reporting AUTHORIZATION reporting;
CREATE OR REPLACE FUNCTION reporting.always(oid, regclass) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OR REPLACE FUNCTION reporting.plpgsql_name(name, name) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT $1::text = ''plpgsql''';
CREATE OR REPLACE FUNCTION public.always(oid, regclass) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OR REPLACE FUNCTION public.plpgsql_name(name, name) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT $1::text = ''plpgsql''';
CREATE OPERATOR reporting.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = reporting.always);
CREATE OPERATOR reporting.= (LEFTARG = name, RIGHTARG = name, FUNCTION = reporting.plpgsql_name);
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.always);
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.plpgsql_name);
ALTER SCHEMA reporting OWNER TO reporting;
"""
ACCOUNTS_CONTENT = "SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM public.accounts a"
HIJACK_CLEANUP = """
DROP SCHEMA reporting CASCADE;
DROP OPERATOR public.= (oid, regclass);
DROP OPERATOR public.= (name, name);
DROP FUNCTION public.always(oid, regclass), public.plpgsql_name(name, name);
"""


@pytest.fixture
def hijacking_operators(settings: Server) -> Iterator[Server]:
    settings.admin(HIJACK_FIXTURE)
    yield settings
    settings.admin(HIJACK_CLEANUP)


@pytest.mark.parametrize(
    "search_path",
    ['"$user", public', "reporting, pg_catalog", "public, pg_catalog", "pg_temp, pg_catalog"],
)
def test_policy_lookups_ignore_the_sessions_operators(
    hijacking_operators: Server, search_path: str
) -> None:
    server = hijacking_operators
    server.set_settings(allow_temp_objects="on")
    target = scratch_path("hijack")
    before = server.admin(ACCOUNTS_CONTENT)
    with server.connect("reporting") as conn:
        conn.execute(f"SET search_path = {search_path}")
        conn.execute("CREATE TEMP TABLE mine (x int)")  # a temporary table exists
        refused_on(conn, "TRUNCATE public.accounts")
        refused_on(conn, "DROP TABLE public.accounts")
        refused_on(conn, f"DO LANGUAGE plpython3u $$open('{target}', 'w').write('x')$$")
        # A temporary pg_language of the session's own changes nothing either.
        conn.execute("CREATE TEMP TABLE pg_language (lanname name, lanpltrusted boolean)")
        conn.execute("INSERT INTO pg_temp.pg_language VALUES ('plpython3u', true)")
        refused_on(conn, f"DO LANGUAGE plpython3u $$open('{target}', 'w').write('x')$$")
        assert attempt_on(conn, "TRUNCATE mine", "DROP TABLE mine") is None
    assert not target.exists()
    # Not the fingerprint: the session's temporary tables go with it, in the background.
    assert server.admin(ACCOUNTS_CONTENT) == before


@pytest.fixture
def other_sessions_temporary_table(settings: Server) -> Iterator[tuple[psycopg.Connection, str]]:
    """An unrestricted session's temporary table, whose owner a restricted role is a member of."""
    settings.admin("CREATE ROLE temp_owner LOGIN")
    settings.admin("GRANT TEMPORARY ON DATABASE postgres TO temp_owner")
    settings.admin("GRANT temp_owner TO reporting")
    victim = settings.connect("temp_owner")
    victim.execute("CREATE TEMP TABLE victim_tmp (a int)")
    victim.execute("INSERT INTO victim_tmp VALUES (42)")
    row = victim.execute("SELECT pg_my_temp_schema()::regnamespace::text").fetchone()
    assert row is not None
    yield victim, str(row[0])
    victim.close()
    settings.admin("DROP OWNED BY temp_owner; DROP ROLE temp_owner")


def test_other_sessions_temporary_tables_are_not_ours(
    settings: Server, other_sessions_temporary_table: tuple[psycopg.Connection, str]
) -> None:
    """allow_temp_objects covers the session's own temporary tables, nobody else's."""
    settings.set_settings(allow_temp_objects="on")
    victim, schema = other_sessions_temporary_table
    with settings.connect("reporting") as conn:
        for route in ("", "SET ROLE temp_owner; "):
            refusal = attempt_on(conn, f"{route}DROP TABLE {schema}.victim_tmp")
            assert refusal is not None, route
            conn.execute("RESET ROLE")
    assert victim.execute("SELECT a FROM victim_tmp").fetchall() == [(42,)]


# ---------------------------------------------------------------------------
# 8. Replication connections
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replication_roles(server: Server) -> Iterator[None]:
    server.admin("CREATE ROLE repl_restricted LOGIN REPLICATION IN ROLE reporting")
    server.admin("CREATE ROLE repl_free LOGIN REPLICATION")
    yield
    server.admin("DROP ROLE repl_restricted, repl_free")


def replication_psql(
    server: Server, user: str, mode: str, command: str
) -> subprocess.CompletedProcess[str]:
    conninfo = server.cluster.dsn(user, replication=mode)
    return run_psql(server.cluster, conninfo, "-v", "ON_ERROR_STOP=1", "-c", command)


@pytest.mark.usefixtures("replication_roles")
@pytest.mark.parametrize(
    ("mode", "command"),
    [
        ("database", "CREATE_REPLICATION_SLOT attack_slot LOGICAL test_decoding"),
        ("true", "CREATE_REPLICATION_SLOT attack_slot PHYSICAL"),
        ("database", "DROP_REPLICATION_SLOT dba_slot"),
        ("true", "IDENTIFY_SYSTEM"),
    ],
)
def test_restricted_roles_open_no_replication_connections(
    server: Server, mode: str, command: str
) -> None:
    server.admin("SELECT pg_create_physical_replication_slot('dba_slot')")
    try:
        result = replication_psql(server, "repl_restricted", mode, command)
        assert result.returncode != 0
        assert "cannot open replication connections" in result.stderr, result.stderr
        slots = {str(r[0]) for r in server.admin("SELECT slot_name FROM pg_replication_slots")}
        assert slots == {"dba_slot"}
    finally:
        server.admin("SELECT pg_drop_replication_slot('dba_slot')")


@pytest.mark.usefixtures("replication_roles")
def test_restricted_roles_take_no_base_backup(server: Server) -> None:
    target = Path(tempfile.mkdtemp(prefix="pysafe-backup-"))
    result = subprocess.run(
        [
            str(server.cluster.bindir / "pg_basebackup"),
            "-d",
            server.cluster.dsn("repl_restricted"),
            "-D",
            str(target / "data"),
            "-X",
            "none",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "cannot open replication connections" in result.stderr
    assert not (target / "data" / "PG_VERSION").exists()


@pytest.mark.usefixtures("replication_roles")
def test_unrestricted_replication_roles_are_unaffected(server: Server) -> None:
    result = replication_psql(server, "repl_free", "true", "IDENTIFY_SYSTEM")
    assert result.returncode == 0, result.stderr
    result = replication_psql(
        server, "repl_free", "database", "CREATE_REPLICATION_SLOT free_slot PHYSICAL"
    )
    assert result.returncode == 0, result.stderr
    server.admin("SELECT pg_drop_replication_slot('free_slot')")


# ---------------------------------------------------------------------------
# 9. EXPLAIN options: the last one wins
# ---------------------------------------------------------------------------

EXPLAIN_TRICKS = [
    "EXPLAIN (ANALYZE off, ANALYZE on) CREATE TABLE explained AS SELECT 1",
    "EXPLAIN (ANALYSE false, ANALYSE) CREATE TABLE explained AS SELECT 1",
    "EXPLAIN (analyze 0, analyze 1) CREATE TABLE explained AS SELECT 1",
    'EXPLAIN ("analyze" false, "analyze" true) CREATE TABLE explained AS SELECT 1',
    "EXPLAIN (ANALYZE off, COSTS off, ANALYZE 'on') SELECT 1 INTO explained",
    "EXPLAIN (ANALYZE false, ANALYZE ON) INSERT INTO accounts VALUES (78, 1)",
]


@pytest.mark.parametrize("only_ddl", [False, True])
@pytest.mark.parametrize("trick", EXPLAIN_TRICKS)
def test_explain_options_last_one_wins(settings: Server, trick: str, only_ddl: bool) -> None:
    if only_ddl:
        settings.set_settings(block_dml="off", force_read_only="off")
    if only_ddl and "INSERT" in trick:
        return  # DML is allowed then; nothing to refuse
    settings.assert_refused("reporting", trick)
    assert settings.admin("SELECT to_regclass('public.explained')") == [(None,)]
    writes_as_unrestricted(settings, trick)


def test_explain_analyze_switched_off_last_is_plain_explain(server: Server) -> None:
    server.assert_allowed(
        "reporting", "EXPLAIN (ANALYZE on, ANALYZE off) CREATE TABLE explained AS SELECT 1"
    )
    assert server.admin("SELECT to_regclass('public.explained')") == [(None,)]


# ---------------------------------------------------------------------------
# 10. The shim checks the policy's reply
# ---------------------------------------------------------------------------

FORGED_POLICY = """
CREATE OR REPLACE FUNCTION pysafe_internal.decide_utility(statement text, command_tag text,
                                                 server_reading text, flags integer)
RETURNS text LANGUAGE sql STABLE AS $$SELECT {reply}::text$$
"""


@pytest.fixture
def forged_database(settings: Server) -> Iterator[str]:
    """A database whose genuine entry point a superuser replaced (still the extension's)."""
    settings.admin("DROP DATABASE IF EXISTS forged WITH (FORCE)")
    settings.admin("CREATE DATABASE forged")  # from template1, which has pysafe
    settings.admin("CREATE EXTENSION IF NOT EXISTS pysafe CASCADE", dbname="forged")
    settings.admin("CREATE TABLE perm (x int); GRANT ALL ON perm TO can_write", dbname="forged")
    settings.admin("GRANT CREATE ON SCHEMA public TO can_write", dbname="forged")
    yield "forged"
    settings.admin("DROP DATABASE forged WITH (FORCE)")


@pytest.mark.parametrize("allow_temp", ["on", "off"])
def test_temporary_reply_is_checked_against_the_tree(
    forged_database: str, settings: Server, allow_temp: str
) -> None:
    settings.set_settings(allow_temp_objects=allow_temp)
    settings.admin(FORGED_POLICY.format(reply="'+temporary'"), dbname=forged_database)
    with settings.connect("reporting", forged_database) as conn:
        for statement in (
            "CREATE TABLE made (x int)",
            "DROP TABLE perm",
            "TRUNCATE perm",
            "CREATE TABLE made AS SELECT 1",
            "SELECT 1 INTO made",
        ):
            refusal = attempt_on(conn, statement)
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, statement
    tables = settings.admin(
        "SELECT count(*) FROM pg_class WHERE relname IN ('made', 'perm')", dbname=forged_database
    )
    assert tables == [(1,)]
    if allow_temp == "on":
        with settings.connect("reporting", forged_database) as conn:
            assert attempt_on(conn, "CREATE TEMP TABLE t (x int)", "DROP TABLE t") is None


@pytest.mark.parametrize("reply", ["'garbage'", "'rule-only'", "E'\\n'", "E'x\\n'"])
def test_malformed_reply_is_a_logged_refusal(
    forged_database: str, settings: Server, reply: str
) -> None:
    settings.admin(FORGED_POLICY.format(reply=reply), dbname=forged_database)
    log = settings.cluster.log_path
    size = log.stat().st_size
    with settings.connect("reporting", forged_database) as conn:
        refused_on(conn, "CREATE TABLE made (x int)")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with log.open(errors="replace") as handle:
            handle.seek(size)
            tail = handle.read()
        if '"rule": "policy_malformed"' in tail:
            break
        time.sleep(0.05)
    assert '"rule": "policy_malformed"' in tail
    assert os.path.exists(log)


# ---------------------------------------------------------------------------
# Real clients read as before: the readings agree on what they send
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [None, "2"])
def test_pg_dump_works_for_a_restricted_role(server: Server, jobs: str | None) -> None:
    """pg_dump sends BEGIN ... READ ONLY, SET TRANSACTION, LOCK, COPY TO STDOUT (and,
    in parallel, pg_export_snapshot() and SET TRANSACTION SNAPSHOT)."""
    before = server.fingerprint()
    target = Path(tempfile.mkdtemp(prefix="pysafe-dump-")) / "dump"
    command = [str(server.cluster.bindir / "pg_dump"), "-d", server.cluster.dsn("reporting")]
    command += ["--table", "accounts", "--table", "rich"]
    command += ["-Fd", "-j", jobs, "-f", str(target)] if jobs else ["-f", str(target)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert server.fingerprint() == before


# ---------------------------------------------------------------------------
# Round 3: transactions started outside the statement hooks; dropped roles
# ---------------------------------------------------------------------------


@pytest.fixture
def writable_large_object(server: Server) -> Iterator[int]:
    server.admin("SELECT lo_from_bytea(5001, 'hello')")
    server.admin("GRANT SELECT, UPDATE ON LARGE OBJECT 5001 TO reporting, writer")
    yield 5001
    server.admin("SELECT lo_unlink(5001)")


OPEN_FOR_WRITING = "fd := lo_open(5001, 393216); RAISE NOTICE 'opened %', fd;"


def read_only_after_commit_in_do(conn: psycopg.Connection, prelude: str = "") -> list[str]:
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute(
        f"DO $$BEGIN {prelude} COMMIT;"
        " RAISE NOTICE 'read only: %', current_setting('transaction_read_only'); END$$"
    )
    return notices


def test_a_transaction_started_inside_do_is_read_only(
    server: Server, writable_large_object: int
) -> None:
    """COMMIT inside DO starts a transaction no statement hook sees first."""
    reset = "PERFORM set_config('default_transaction_read_only', NULL, false);"
    with server.connect("reporting") as conn:
        assert read_only_after_commit_in_do(conn, reset) == ["read only: on"]
        # Opening a large object for writing, which PostgreSQL 16+ refuses in a
        # read-only transaction, fares inside DO as it does outside.
        plain = attempt_on(conn, "SELECT lo_open(5001, 393216)")
        block = f"DO $$DECLARE fd int; BEGIN {reset} COMMIT; {OPEN_FOR_WRITING} END$$"
        assert (attempt_on(conn, block) is None) == (plain is None)
    with server.connect("app_login") as conn:  # a switched identity keeps its login's defaults
        conn.execute("SET SESSION AUTHORIZATION reporting")
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
        assert read_only_after_commit_in_do(conn) == ["read only: on"]
    # Control: an unrestricted role's transaction after COMMIT is read-write.
    with server.connect("writer") as conn:
        assert read_only_after_commit_in_do(conn) == ["read only: off"]
        conn.execute(f"DO $$DECLARE fd int; BEGIN COMMIT; {OPEN_FOR_WRITING} END$$")


def test_a_restricted_session_whose_role_is_dropped_stays_restricted(server: Server) -> None:
    server.admin("CREATE TABLE open_table (x int); GRANT INSERT, SELECT ON open_table TO PUBLIC")
    server.admin("CREATE ROLE short_lived LOGIN IN ROLE reporting")
    try:
        with server.connect("short_lived") as conn:
            refused_on(conn, "INSERT INTO open_table VALUES (1)")
            server.admin("DROP ROLE short_lived")
            refusal = attempt_on(conn, "INSERT INTO open_table VALUES (2)")
            assert refusal is not None, "a dropped restricted role wrote"
            refusal = attempt_on(conn, "SELECT pg_advisory_lock(99)")
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
        assert server.admin("SELECT count(*) FROM open_table") == [(0,)]
    finally:
        server.admin("DROP TABLE open_table; DROP ROLE IF EXISTS short_lived")


HANDLER_CALLS = ("SELECT plpgsql_call_handler()", "SELECT plpython3_call_handler()")
FUNCTIONS_MESSAGE = messages.FUNCTIONS


def test_handlers_called_directly_are_judged(server: Server) -> None:
    """Review round 5: fmgr binds language handlers and trigger functions for
    the machinery unchecked, but a query calling one directly is announced by
    the executor, and judged there like any volatile C function."""
    with server.connect("reporting") as conn:
        assert_each_refused(conn, HANDLER_CALLS, message=FUNCTIONS_MESSAGE)
    for statement in HANDLER_CALLS:
        outcome = server.attempt("writer", statement)
        assert outcome is None or outcome.sqlstate != READ_ONLY_SQLSTATE, outcome
    # The machinery itself still runs: PL/pgSQL through its handler, and the login trigger.
    server.assert_allowed("reporting", "DO $d$BEGIN PERFORM 1; END$d$", "SELECT count(*) FROM rich")
