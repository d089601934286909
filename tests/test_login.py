"""Login-time enforcement: restricted sessions start with read-only defaults.

Every version: the shim applies them before the login's first statement runs.
PostgreSQL 17+: also an "ON login" event trigger (a C function of the shim),
so the connection reports them at once.  Before 17, pysafe_session.so in
session_preload_libraries does that, opt-in (install --session-preload)
because loading a library per connection costs more than the goal allows.
None of these is what protects a session (the per-statement checks are);
none may keep anyone out.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests.support import Server, attempt_on, run_psql

LOGIN_EVENTS = 17


def first_statement_sees(server: Server, user: str, dbname: str = "postgres") -> str:
    """default_transaction_read_only as the session's very first statement sees it."""
    with server.connect(user, dbname) as conn:
        row = conn.execute("SHOW default_transaction_read_only").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("reporting", "on"),
        ("analyst", "on"),
        ("writer", "off"),
        ("boss", "off"),
        ("postgres", "off"),
    ],
)
def test_restricted_sessions_start_read_only(server: Server, user: str, expected: str) -> None:
    assert first_statement_sees(server, user) == expected


def test_force_read_only_off_leaves_defaults_alone(settings: Server) -> None:
    settings.set_settings(force_read_only="off")
    assert first_statement_sees(settings, "reporting") == "off"


def test_the_login_path_fits_the_server_version(server: Server) -> None:
    triggers = server.admin(
        "SELECT e.evtname, e.evtenabled, l.lanname FROM pg_event_trigger e "
        "JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_language l ON l.oid = p.prolang "
        "WHERE e.evtevent = 'login'"
    )
    preload = str(server.admin("SHOW session_preload_libraries")[0][0])
    assert "pysafe_session" not in preload  # opt-in, see test_installer.py
    if server.cluster.major >= LOGIN_EVENTS:
        # A C function: a PL/pgSQL one costs every connection (docs/benchmarks.md).
        assert triggers == [("pysafe_login", "O", "c")]
    else:
        assert triggers == []


@pytest.mark.parametrize(("user", "restricted"), [("reporting", True), ("writer", False)])
def test_what_the_connection_reports_before_any_statement(
    server: Server, user: str, restricted: bool
) -> None:
    """default_transaction_read_only is reported to clients (ParameterStatus) at
    connection, on every version: the shim sets it during authentication."""
    with server.connect(user) as conn:
        reported = conn.info.parameter_status("default_transaction_read_only")
        assert reported == ("on" if restricted else "off")
        conn.execute("SELECT 1")
        assert conn.info.parameter_status("default_transaction_read_only") == (
            "on" if restricted else "off"
        )


def test_set_session_authorization_skips_the_login_path_but_not_the_checks(
    server: Server,
) -> None:
    with server.connect("app_login") as conn:
        assert attempt_on(conn, "SET SESSION AUTHORIZATION reporting") is None
        # No login happened, so the defaults are the login role's ...
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
        # ... and the per-statement checks still refuse the write.
        refusal = attempt_on(conn, "INSERT INTO accounts VALUES (95, 1)")
        assert refusal is not None and refusal.sqlstate == "25006"


@pytest.fixture
def later_database(server: Server) -> Iterator[str]:
    server.admin("CREATE DATABASE made_after_install")
    yield "made_after_install"
    server.admin("DROP DATABASE made_after_install WITH (FORCE)")


def test_databases_made_later_from_template1_have_the_login_path(
    server: Server, later_database: str
) -> None:
    assert first_statement_sees(server, "reporting", later_database) == "on"
    assert first_statement_sees(server, "writer", later_database) == "off"


BROKEN_LOGIN_FUNCTION = """
CREATE FUNCTION broken_login() RETURNS event_trigger LANGUAGE plpgsql AS
  $$BEGIN RAISE EXCEPTION 'broken login trigger'; END$$
"""


def test_documented_recovery_from_a_broken_login_path(server: Server) -> None:
    """docs/install.md "Recovery": a superuser still gets in, then repairs."""
    cluster = server.cluster
    if cluster.major >= LOGIN_EVENTS:
        server.admin(BROKEN_LOGIN_FUNCTION)
        server.admin("CREATE EVENT TRIGGER broken ON login EXECUTE FUNCTION broken_login()")
        bypass = "-c event_triggers=off"
        repair = ["DROP EVENT TRIGGER broken", "DROP FUNCTION broken_login()"]
    else:
        server.admin("ALTER SYSTEM SET session_preload_libraries = 'missing_lib'")
        server.admin("SELECT pg_reload_conf()")
        bypass = "-c session_preload_libraries="
        repair = ["ALTER SYSTEM RESET session_preload_libraries", "SELECT pg_reload_conf()"]
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(cluster.dsn(), connect_timeout=5).close()
        with psycopg.connect(cluster.dsn(options=bypass), autocommit=True) as conn:
            for statement in repair:
                conn.execute(statement)
    finally:
        with psycopg.connect(cluster.dsn(options=bypass), autocommit=True) as conn:
            for statement in repair:
                attempt_on(conn, statement)
    assert first_statement_sees(server, "postgres") == "off"
    assert first_statement_sees(server, "reporting") == "on"


@pytest.mark.parametrize(("user", "accepted"), [("reporting", True), ("writer", False)])
def test_target_session_attrs_read_only(server: Server, user: str, accepted: bool) -> None:
    """libpq's target_session_attrs=read-only finds restricted logins read-only, with
    no login trigger or preloaded library (psql, a real client)."""
    conninfo = server.cluster.dsn(user, target_session_attrs="read-only")
    result = run_psql(server.cluster, conninfo, "-At", "-c", "SELECT 1")
    if accepted:
        assert result.returncode == 0 and result.stdout.strip() == "1", result.stderr
    else:
        assert result.returncode != 0 and "not read-only" in result.stderr, result.stderr
