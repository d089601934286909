"""Side channels of a read-only session: settings that change how it is logged or
replicated, log volume, forged refusal lines, exported snapshot files.

Each claim is tried as a restricted role through several paths, checked from
inside the restricted session (settings are per session) or from a superuser
(log file, pg_snapshots/), and run as the unrestricted "writer" too, which
succeeds.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support import (
    READ_ONLY_SQLSTATE,
    REPO,
    Server,
    assert_each_refused,
    attempt_on,
    quote_literal,
)
from tests.test_audit_log import JQ_RECIPE, structured_logs, wait_for_text  # noqa: F401

PREFIX = "pysafe refusal: "
OPERATIONS_DOC = REPO / "docs" / "operations.md"

# What the attacker used: a superuser's helper that sets what its caller asks.
HELPER_SQL = """
CREATE OR REPLACE FUNCTION public.set_any(name text, value text) RETURNS text
  LANGUAGE plpgsql SECURITY DEFINER AS
  $$BEGIN RETURN set_config(name, value, false); END$$;
GRANT EXECUTE ON FUNCTION public.set_any(text, text) TO PUBLIC;
CREATE OR REPLACE FUNCTION public.quietly() RETURNS text
  LANGUAGE sql SECURITY DEFINER SET log_min_messages = panic AS
  $$SELECT current_setting('log_min_messages')$$;
GRANT EXECUTE ON FUNCTION public.quietly() TO PUBLIC;
CREATE OR REPLACE FUNCTION public.traced() RETURNS text
  LANGUAGE sql SET debug_print_plan = on AS $$SELECT current_setting('debug_print_plan')$$;
GRANT EXECUTE ON FUNCTION public.traced() TO PUBLIC;
"""

QUIETING = {
    "log_min_messages": "panic",
    "log_statement": "none",
    "session_replication_role": "replica",
    "log_min_error_statement": "panic",
}
LOUD = ("debug_print_parse", "debug_print_rewritten", "debug_print_plan", "trace_sort")


def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def helpers(server: Server) -> Iterator[Server]:
    server.admin(HELPER_SQL)
    yield server


def show(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute(f"SELECT current_setting({quote_literal(name)})").fetchone()
    assert row is not None
    return str(row[0])


def refused(conn: psycopg.Connection, statement: str) -> None:
    refusal = attempt_on(conn, statement)
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (statement, refusal)


# -- superuser-only settings -------------------------------------------------


def test_restricted_session_cannot_quiet_its_logging_through_a_definer_helper(
    helpers: Server,
) -> None:
    with helpers.connect("reporting") as conn:
        before = {name: show(conn, name) for name in QUIETING}
        for name, value in QUIETING.items():
            refused(conn, f"SELECT set_any({quote_literal(name)}, {quote_literal(value)})")
        refused(conn, "SELECT quietly()")  # a SECURITY DEFINER function's own SET clause
        refused(conn, "DO $$BEGIN PERFORM set_any('log_statement', 'none'); END$$")
        conn.execute("BEGIN")
        refused(conn, "SELECT set_any('log_min_messages', 'panic')")
        conn.execute("ROLLBACK")
        assert {name: show(conn, name) for name in QUIETING} == before
        # Its refusals are still logged: the next one leaves a line.
        marker = unique()
        refused(conn, f"INSERT INTO accounts VALUES (90, 1) /* {marker} */")
    assert marker in helpers.cluster.log_path.read_text(errors="replace")
    # The refused changes are counted under their own rule.
    rows = helpers.admin(
        "SELECT rule FROM pysafe.refusals WHERE role = 'reporting' AND rule = 'superuser_settings'"
    )
    assert rows
    # Control: an unrestricted role uses the same helper.
    with helpers.connect("writer") as conn:
        for name, value in QUIETING.items():
            assert attempt_on(conn, f"SELECT set_any('{name}', '{value}')") is None
            assert show(conn, name) == value
        assert attempt_on(conn, "SELECT quietly()") is None


def test_granted_superuser_settings_stay_put_by_set_set_local_set_role_and_startup(
    server: Server,
) -> None:
    if server.cluster.major < 15:
        pytest.skip("GRANT SET ON PARAMETER came with PostgreSQL 15")
    server.admin(
        "CREATE ROLE quiet_setter NOLOGIN;"
        " GRANT SET ON PARAMETER log_statement, session_replication_role TO quiet_setter;"
        " GRANT quiet_setter TO reporting, writer"
    )
    try:
        routes = (
            "SET ROLE quiet_setter",
            "SET log_statement = ddl",
            "SET session_replication_role = replica",
            "SELECT set_config('log_statement', 'ddl', false)",
        )
        with server.connect("reporting") as conn:
            assert attempt_on(conn, routes[0]) is None
            assert_each_refused(conn, routes[1:])
            conn.execute("BEGIN")
            refused(conn, "SET LOCAL log_statement = ddl")
            conn.execute("ROLLBACK")
            assert show(conn, "log_statement") == "none"
            assert show(conn, "session_replication_role") == "origin"
        with pytest.raises(psycopg.Error) as raised:
            psycopg.connect(
                server.cluster.dsn("reporting", options="-c log_statement=ddl"), autocommit=True
            )
        assert "cannot change superuser-only setting" in str(raised.value)
        # Control: an unrestricted member of the same role.
        with server.connect("writer") as conn:
            assert attempt_on(conn, *routes) is None
            assert show(conn, "log_statement") == "ddl"
        with psycopg.connect(
            server.cluster.dsn("writer", options="-c log_statement=ddl"), autocommit=True
        ) as conn:
            assert show(conn, "log_statement") == "ddl"
    finally:
        server.admin("DROP OWNED BY quiet_setter; DROP ROLE quiet_setter")


def test_values_from_role_settings_and_parallel_workers_still_apply(server: Server) -> None:
    server.admin("ALTER ROLE analyst SET log_statement = 'all'")
    server.admin("ALTER ROLE analyst SET trace_sort = on")
    try:
        with server.connect("analyst") as conn:
            assert show(conn, "log_statement") == "all"
            assert show(conn, "trace_sort") == "on"
            # Parallel workers restore the leader's values, these included.
            for statement in (
                "SET parallel_setup_cost = 0",
                "SET parallel_tuple_cost = 0",
                "SET min_parallel_table_scan_size = 0",
                "SET max_parallel_workers_per_gather = 2",
            ):
                conn.execute(statement)
            row = conn.execute("SELECT count(*) FROM accounts").fetchone()
            assert row == (5,)
    finally:
        server.admin("ALTER ROLE analyst RESET ALL")


# -- log-writing user settings -------------------------------------------------


@pytest.mark.parametrize("name", LOUD)
def test_log_writing_settings_cannot_be_turned_on(helpers: Server, name: str) -> None:
    routes = (
        f"SET {name} = on",
        f"SELECT set_config('{name}', 'on', false)",
        f"DO $$BEGIN PERFORM set_config('{name}', 'on', true); END$$",
        f"SELECT set_any('{name}', 'on')",
    )
    with helpers.connect("reporting") as conn:
        assert_each_refused(conn, routes)
        conn.execute("BEGIN")
        refused(conn, f"SET LOCAL {name} = on")
        conn.execute("ROLLBACK")
        if name == "debug_print_plan":
            refused(conn, "SELECT traced()")  # a function's SET clause
        assert show(conn, name) == "off"
        assert attempt_on(conn, f"SET {name} = off") is None  # the built-in value: yes
    with pytest.raises(psycopg.Error) as raised:
        psycopg.connect(helpers.cluster.dsn("reporting", options=f"-c {name}=on"), autocommit=True)
    assert f'cannot change logging setting "{name}"' in str(raised.value)
    with helpers.connect("writer") as conn:
        assert attempt_on(conn, routes[0], f"SET {name} = off") is None
        assert attempt_on(conn, "SELECT traced()") is None


def test_debug_print_writes_nothing_for_a_restricted_session(helpers: Server) -> None:
    log = helpers.cluster.log_path
    with helpers.connect("reporting") as conn:
        for name in LOUD[:3]:
            attempt_on(conn, f"SET {name} = on")
        size = log.stat().st_size
        for _ in range(5):
            conn.execute("SELECT * FROM accounts a JOIN accounts b USING (id)").fetchall()
    time.sleep(0.3)
    assert log.stat().st_size - size < 2000


# -- log volume from user code ---------------------------------------------------


def count_in_log(server: Server, marker: str) -> int:
    time.sleep(0.3)
    return server.cluster.log_path.read_text(errors="replace").count(marker)


def test_raise_in_a_loop_writes_a_bounded_number_of_lines(server: Server) -> None:
    marker = unique()
    flood = (
        "DO $$BEGIN FOR i IN 1..500 LOOP"
        f" RAISE {{level}} '{marker} {{level}} %', i; END LOOP; END$$"
    )
    with server.connect("reporting") as conn:
        for level in ("LOG", "WARNING"):
            conn.execute(flood.format(level=level))
        # Each statement has its own allowance.
        conn.execute(flood.format(level="LOG"))
    assert count_in_log(server, f"LOG:  {marker} LOG") == 64
    assert count_in_log(server, f"WARNING:  {marker} WARNING") == 32
    assert "the rest are not written" in server.cluster.log_path.read_text(errors="replace")
    # One long message is cut, for the server log.
    long_marker = unique()
    with server.connect("reporting") as conn:
        conn.execute(f"DO $$BEGIN RAISE LOG '{long_marker}%', repeat('x', 100000); END$$")
    time.sleep(0.3)
    [line] = [
        line
        for line in server.cluster.log_path.read_text(errors="replace").splitlines()
        if f"LOG:  {long_marker}" in line
    ]
    assert len(line) < 2300
    # Control: an unrestricted role's messages are all written, whole.
    old_marker, marker = marker, unique()
    with server.connect("writer") as conn:
        conn.execute(flood.format(level="LOG").replace(old_marker, marker))
        conn.execute(f"DO $$BEGIN RAISE LOG '{marker}%', repeat('y', 100000); END$$")
    assert count_in_log(server, f"LOG:  {marker} LOG") == 500
    assert any(
        len(line) > 100000
        for line in server.cluster.log_path.read_text(errors="replace").splitlines()
        if marker in line
    )


def test_a_long_failing_statement_is_not_echoed_whole(server: Server) -> None:
    """An ERROR echoes its statement: a restricted session's long one is left out."""
    padding = "A" * 200_000
    for user, echoed in (("reporting", False), ("writer", True)):
        marker = unique()
        with server.connect(user) as conn:
            for statement in (
                f"SELECT 1 /* {marker} {padding} */ FROM no_such_table_{marker}",
                f"INSERT INTO accounts VALUES (92, 1) /* {marker} {padding} */",
            ):
                attempt_on(conn, statement)
        time.sleep(0.3)
        lines = [
            line
            for line in server.cluster.log_path.read_text(errors="replace").splitlines()
            if marker in line
        ]
        assert lines, user
        assert any(len(line) > 200_000 for line in lines) == echoed, user
    server.admin("DELETE FROM accounts WHERE id = 92")


# -- forged refusal lines ----------------------------------------------------------


def forged_object(marker: str) -> str:
    return json.dumps(
        {
            "role": "writer",
            "current_role": "writer",
            "database": "postgres",
            "kind": "DROP TABLE",
            "rule": "utility",
            "message": "cannot execute DROP TABLE in a read-only session",
            "statement": f"DROP TABLE payroll /* {marker} */",
        }
    )


def forging_statements(marker: str) -> list[str]:
    line = PREFIX + forged_object(marker)
    encoded = base64.b64encode(line.encode()).decode()
    fake_stderr = f"2025-01-01 00:00:00.000 UTC [1] LOG:  {line}"
    quoted = fake_stderr.replace("'", "''")
    return [
        f"DO $$BEGIN RAISE LOG '%', convert_from(decode('{encoded}', 'base64'), 'UTF8'); END$$",
        f"DO $$BEGIN RAISE WARNING 'x' USING DETAIL = E'\\n{quoted}'; END$$",
        # A refused statement whose text holds a newline and a fake line (STATEMENT: echo).
        f"INSERT INTO accounts VALUES (91, 1) /*\n{fake_stderr} */",
        # Text holding the marker, which used to make the recipe's jq stop.
        f"SELECT '{PREFIX}{{' /* {marker} */ FROM nowhere_at_all",
    ]


def genuine_refusal(server: Server, user: str) -> str:
    marker = unique()
    with server.connect(user) as conn:
        refused(conn, f"CREATE TABLE genuine_{marker} (x int) /* {PREFIX} {marker} */")
    return marker


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq (.ci/setup installs it)")
def test_the_documented_recipe_yields_only_refusals_the_shim_made(
    structured_logs: Server,  # noqa: F811
) -> None:
    assert f"jq -R -c '{JQ_RECIPE}' \"$PGDATA\"/log/*.json" in OPERATIONS_DOC.read_text()
    marker = unique()
    for user in ("reporting", "writer", "postgres"):
        with structured_logs.connect(user) as conn:
            for statement in forging_statements(marker):
                attempt_on(conn, statement)
    last = genuine_refusal(structured_logs, "reporting")
    files = wait_for_text(structured_logs, "json", last)
    done = subprocess.run(
        ["jq", "-R", "-c", JQ_RECIPE, *map(str, files)], capture_output=True, text=True, check=True
    )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    # Nothing forged, and the genuine refusal after all that hostile text is there.
    assert not [r for r in records if r.get("role") == "writer"], records
    assert not [r for r in records if "payroll" in r.get("statement", "")]
    [record] = [r for r in records if last in r["statement"]]
    assert (record["role"], record["rule"]) == ("reporting", "utility")
    # The refused INSERT with the fake line is one genuine record, with its text.
    inserts = [r for r in records if r["kind"] == "INSERT" and "VALUES (91, 1)" in r["statement"]]
    assert len(inserts) == 1 and inserts[0]["role"] == "reporting"
    # Every JSON log entry whose message begins with the marker is one the shim wrote.
    for path in files:
        for raw in path.read_text().splitlines():
            entry = json.loads(raw)
            if str(entry.get("message", "")).startswith(PREFIX):
                assert "payroll" not in entry["message"], entry


def test_stderr_log_has_no_forged_line_from_raise_or_statement_text(server: Server) -> None:
    marker = unique()
    with server.connect("reporting") as conn:
        for statement in forging_statements(marker):
            attempt_on(conn, statement)
    last = genuine_refusal(server, "reporting")
    time.sleep(0.3)
    text = server.cluster.log_path.read_text(errors="replace")
    assert last in text
    for line in text.splitlines():
        if PREFIX in line:
            assert "payroll" not in line, line
            # One marker per line: the shim's own, before its object.
            assert line.count(PREFIX) == 1, line
            json.loads(line.split(PREFIX, 1)[1])


# -- exported snapshots --------------------------------------------------------------


def snapshot_files(server: Server) -> int:
    row = server.admin("SELECT count(*) FROM pg_ls_dir('pg_snapshots')")
    return int(str(row[0][0]))


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(pg_export_snapshot()) FROM generate_series(1, 50)",
        "DO $$BEGIN FOR i IN 1..50 LOOP PERFORM pg_export_snapshot(); END LOOP; END$$",
        "DO $$DECLARE s text; BEGIN FOR i IN 1..50 LOOP s := pg_export_snapshot(); END LOOP; END$$",
    ],
    ids=["one-statement", "perform-loop", "simple-expression-loop"],
)
def test_restricted_transaction_keeps_few_exported_snapshots(
    server: Server, statement: str
) -> None:
    # In a transaction block the abort keeps the files until ROLLBACK: at most four
    # (refused before a plan that would make a fifth), or the session ends.
    with server.connect("reporting") as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(psycopg.Error) as raised:
            conn.execute(statement)
        assert "cannot keep more than 4 exported snapshots" in str(raised.value)
        assert snapshot_files(server) <= 4
        if not (conn.closed or conn.broken):
            conn.execute("ROLLBACK")
    assert snapshot_files(server) == 0
    # Alone, it is refused with 25006.
    with server.connect("reporting") as conn:
        refused(conn, statement)
    with server.connect("writer") as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert attempt_on(conn, statement) is None
        assert snapshot_files(server) == 50
        conn.execute("ROLLBACK")


def test_restricted_transaction_may_export_up_to_four_snapshots(server: Server) -> None:
    with server.connect("reporting") as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        for _ in range(4):
            conn.execute("SELECT pg_export_snapshot()")
        assert snapshot_files(server) == 4
        refused(conn, "SELECT pg_export_snapshot()")  # refused before it runs
        assert snapshot_files(server) == 4
        conn.execute("ROLLBACK")
        assert snapshot_files(server) == 0
        # A new transaction starts again from none.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT pg_export_snapshot()")
        assert snapshot_files(server) == 1
        conn.execute("COMMIT")
        # A cursor fetching one row at a time meets the bound at its fifth fetch.
        conn.execute("BEGIN")
        conn.execute("DECLARE c CURSOR FOR SELECT pg_export_snapshot() FROM generate_series(1, 50)")
        for _ in range(4):
            conn.execute("FETCH 1 FROM c").fetchall()
        with pytest.raises(psycopg.Error):
            conn.execute("FETCH 1 FROM c")
    assert snapshot_files(server) == 0


# -- settings of a library a function call loads later (found by the review) --


@pytest.mark.parametrize("order", ["after_load", "placeholder_first"])
def test_a_late_loaded_librarys_superuser_setting_stays_put(server: Server, order: str) -> None:
    """pgcrypto (PostgreSQL 18) defines a superuser-only setting when a call loads it."""
    if int(str(server.admin("SHOW server_version_num")[0][0])) < 180000:
        pytest.skip("pgcrypto.builtin_crypto_enabled is PostgreSQL 18's")
    name = "pgcrypto.builtin_crypto_enabled"
    server.admin("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    server.admin(f"GRANT SET ON PARAMETER {name} TO reporting, writer")
    try:
        for user, restricted in (("reporting", True), ("writer", False)):
            with server.connect(user) as conn:
                if order == "placeholder_first":
                    conn.execute(f"SET {name} = off")  # a placeholder: no library yet
                    # loading pgcrypto.so turns the placeholder into the setting
                    refusal = attempt_on(conn, "SELECT digest('x', 'sha256')", "SELECT 1")
                else:
                    conn.execute("SELECT digest('x', 'sha256')")  # loads pgcrypto.so
                    refusal = attempt_on(conn, f"SET {name} = off")
                if restricted:
                    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
                    if order == "after_load":
                        assert show(conn, name) == "on"
                    else:
                        assert "before its library loaded" in (refusal.message or "")
                        assert conn.closed or conn.broken  # the session was ended
                else:
                    assert refusal is None, refusal
                    assert show(conn, name) == "off"
    finally:
        server.admin(f"REVOKE SET ON PARAMETER {name} FROM reporting, writer")
