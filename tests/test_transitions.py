"""Issue 17, transitions: a session that becomes restricted while open is ended.

A restriction (pysafe.restrict(), a reload of pysafe.roles, a GRANT of a
restricted role, a demotion, DROP ROLE) ends the sessions it reaches at
their next hook call, with FATAL 25006: whatever they set up before (an
open transaction, prepared statements, cursors, PL/pgSQL simple
expressions, advisory locks) never runs restricted.  A restricted login
never changes its identity, and with pysafe.lock_session_authorization an
identity switch is locked from the statement that made it.

Each test tries the route as a role that becomes restricted, checks from a
superuser that nothing changed (rows, pg_locks, sequences, files), and runs
the same as a role that stays unrestricted, which must succeed.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import READ_ONLY_SQLSTATE, RESTRICTED_ROLES_SETTING, Server, attempt_on

ENDED = "became restricted by pysafe while this session was open"
STARTED_UNRESTRICTED = "cannot run a query started before this session became read-only"

OBJECTS = """
CREATE TABLE trans_rows (x int);
GRANT INSERT, SELECT ON trans_rows TO PUBLIC;
CREATE SEQUENCE trans_seq;
GRANT USAGE, SELECT, UPDATE ON trans_seq TO PUBLIC;
CREATE FUNCTION trans_grab(k bigint) RETURNS boolean LANGUAGE plpgsql AS
  $$BEGIN RETURN pg_try_advisory_lock(k); END$$;
CREATE FUNCTION trans_write_file(path text, line text) RETURNS int
  LANGUAGE plpython3u VOLATILE AS $$open(path, "a").write(line + "\\n"); return 1$$;
GRANT EXECUTE ON FUNCTION trans_grab(bigint), trans_write_file(text, text) TO PUBLIC;
"""


@pytest.fixture(scope="module")
def objects(server: Server) -> Iterator[None]:
    server.admin(OBJECTS)
    yield
    server.admin("DROP TABLE trans_rows; DROP SEQUENCE trans_seq")
    server.admin("DROP FUNCTION trans_grab(bigint), trans_write_file(text, text)")


@pytest.fixture
def role(server: Server, objects: None) -> Iterator[str]:
    """A fresh login role, unrestricted to begin with; dropped (and unrestricted) afterwards."""
    name = f"trans_{time.monotonic_ns() % 10**9}"
    server.admin(f"CREATE ROLE {name} LOGIN")
    server.admin("TRUNCATE trans_rows")
    yield name
    server.admin(
        f"DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN"
        f" REVOKE pysafe_restricted FROM {name}; DROP ROLE {name}; END IF; END$$"
    )


def rows(server: Server) -> int:
    return int(str(server.admin("SELECT count(*) FROM trans_rows")[0][0]))


def sequence_value(server: Server) -> int:
    return int(str(server.admin("SELECT last_value FROM trans_seq")[0][0]))


def advisory_locks(server: Server, pid: int) -> list[tuple[object, ...]]:
    return server.admin(
        f"SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid} ORDER BY objid"
    )


def assert_ended(conn: psycopg.Connection, *statements: str) -> None:
    """The statements end the session: FATAL 25006, the connection is gone."""
    refusal = attempt_on(conn, *statements)
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
    assert ENDED in (refusal.message or ""), refusal
    assert conn.closed or conn.broken


def wait_gone(server: Server, pid: int) -> None:
    """The backend has exited (its locks are released as it goes)."""
    deadline = time.monotonic() + 10
    while server.admin(f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"):
        assert time.monotonic() < deadline, f"backend {pid} still there"
        time.sleep(0.05)


def restrict(server: Server, how: str, name: str) -> None:
    """Make the role restricted while its session is open."""
    if how == "restrict":
        server.admin(f"SELECT pysafe.restrict('{name}')")
    elif how == "grant":
        server.admin(f"GRANT reporting TO {name}")
    else:
        server.set_settings(roles=f"{RESTRICTED_ROLES_SETTING}, {name}")


def unrelated_change(server: Server) -> None:
    """What happens to other roles meanwhile: a restriction, a GRANT, a reload."""
    server.admin("CREATE ROLE trans_bystander NOLOGIN")
    try:
        server.admin("SELECT pysafe.restrict('trans_bystander')")
        server.admin("GRANT reporting TO trans_bystander")
        server.set_settings(roles=f"{RESTRICTED_ROLES_SETTING}, trans_bystander")
    finally:
        server.admin("REVOKE pysafe_restricted FROM trans_bystander; DROP ROLE trans_bystander")


# ---------------------------------------------------------------------------
# Work under way: prepared statements, locks, cursors, simple expressions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["restrict", "grant", "roles"])
def test_an_earlier_prepared_statement_does_not_run(settings: Server, role: str, how: str) -> None:
    with settings.connect(role) as conn:
        conn.execute("BEGIN")
        conn.execute("PREPARE put(int) AS INSERT INTO trans_rows VALUES ($1)")
        conn.execute("EXECUTE put(1)")
        restrict(settings, how, role)
        assert_ended(conn, "EXECUTE put(2)", "COMMIT")
    assert rows(settings) == 0  # the open transaction was rolled back
    # Reconnected, the role is restricted from its first statement.
    refusal = settings.attempt(role, "INSERT INTO trans_rows VALUES (3)")
    assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
    assert ENDED not in (refusal.message or "")
    assert rows(settings) == 0


def test_no_advisory_lock_after_restrict(server: Server, role: str) -> None:
    with server.connect(role) as conn:
        pid = conn.info.backend_pid
        conn.execute("SELECT pg_advisory_lock(6)")  # held from before
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(7)")
        server.admin(f"SELECT pysafe.restrict('{role}')")
        assert_ended(conn, "SELECT pg_advisory_lock(5)")
    wait_gone(server, pid)
    assert advisory_locks(server, pid) == []


def test_a_plpgsql_simple_expression_takes_no_new_lock(server: Server, role: str) -> None:
    with server.connect(role) as conn:
        pid = conn.info.backend_pid
        conn.execute("BEGIN")
        assert conn.execute("SELECT trans_grab(11)").fetchone() == (True,)
        server.admin(f"SELECT pysafe.restrict('{role}')")
        assert_ended(conn, "SELECT trans_grab(12)")
    wait_gone(server, pid)
    assert advisory_locks(server, pid) == []


@pytest.mark.parametrize("call", ["nextval('trans_seq')", "trans_write_file('{path}', 'row')"])
def test_an_earlier_cursor_runs_nothing_more(server: Server, role: str, call: str) -> None:
    path = Path(tempfile.mkdtemp(prefix="pysafe-transitions-")) / "written"
    path.parent.chmod(0o777)
    with server.connect(role) as conn:
        conn.execute("BEGIN")
        conn.execute(
            "DECLARE c CURSOR FOR SELECT " + call.format(path=path) + " FROM generate_series(1, 10)"
        )
        conn.execute("FETCH 1 FROM c")
        sequence, lines = (
            sequence_value(server),
            path.read_text().count("\n") if path.exists() else 0,
        )
        server.admin(f"SELECT pysafe.restrict('{role}')")
        assert_ended(conn, "FETCH 3 FROM c")
    assert sequence_value(server) == sequence
    assert (path.read_text().count("\n") if path.exists() else 0) == lines


def test_a_with_hold_cursor_does_not_run_at_commit(server: Server, role: str) -> None:
    with server.connect(role) as conn:
        conn.execute("BEGIN")
        before = sequence_value(server)
        conn.execute(
            "DECLARE h CURSOR WITH HOLD FOR SELECT nextval('trans_seq') FROM generate_series(1, 5)"
        )
        server.admin(f"SELECT pysafe.restrict('{role}')")
        assert_ended(conn, "COMMIT", "FETCH ALL FROM h")
    assert sequence_value(server) == before


def test_a_do_loop_committing_each_row_stops_at_a_reload(settings: Server, role: str) -> None:
    """A reload is applied at the next hook call, not at the next client message."""
    outcome: list[object] = []

    def loop() -> None:
        with settings.connect(role) as conn:
            outcome.append(
                attempt_on(
                    conn,
                    "DO $$BEGIN FOR i IN 1..60 LOOP INSERT INTO trans_rows VALUES (i); COMMIT;"
                    " PERFORM pg_sleep(0.05); END LOOP; END$$",
                )
            )

    thread = threading.Thread(target=loop)
    thread.start()
    deadline = time.monotonic() + 10
    while rows(settings) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    settings.set_settings(roles=f"{RESTRICTED_ROLES_SETTING}, {role}")
    committed = rows(settings)
    thread.join(20)
    refusal = outcome[0]
    assert refusal is not None and getattr(refusal, "sqlstate", None) == READ_ONLY_SQLSTATE
    assert ENDED in str(getattr(refusal, "message", ""))
    assert rows(settings) <= committed + 1 < 60


def test_drop_role_ends_its_session(server: Server, role: str) -> None:
    for restricted_first in (True, False):
        with server.connect(role) as conn:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO trans_rows VALUES (1)")
            if restricted_first:
                server.admin(f"SELECT pysafe.restrict('{role}')")
            server.admin(f"DROP ROLE {role}")
            refusal = attempt_on(conn, "INSERT INTO trans_rows VALUES (2)", "COMMIT")
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
            assert conn.closed or conn.broken
        assert rows(server) == 0
        server.admin(f"CREATE ROLE {role} LOGIN")


# ---------------------------------------------------------------------------
# Demotion (issue 17, item 2)
# ---------------------------------------------------------------------------


@pytest.fixture
def demotable(server: Server, objects: None) -> Iterator[str]:
    name = f"trans_ops_{time.monotonic_ns() % 10**9}"
    server.admin(f"CREATE ROLE {name} LOGIN SUPERUSER")
    server.admin("TRUNCATE trans_rows")
    yield name
    server.admin(f"REVOKE pysafe_restricted FROM {name}; DROP ROLE {name}")


def demote(server: Server, name: str) -> None:
    server.admin(f"ALTER ROLE {name} NOSUPERUSER")
    server.admin(f"SELECT pysafe.restrict('{name}')")


def test_a_demoted_superuser_session_ends(server: Server, demotable: str) -> None:
    with server.connect(demotable) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO trans_rows VALUES (1)")
        demote(server, demotable)
        assert_ended(
            conn, "SET SESSION AUTHORIZATION postgres", "INSERT INTO trans_rows VALUES (2)"
        )
    assert rows(server) == 0
    assert server.admin(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{demotable}'") == [
        (False,)
    ]


@pytest.mark.parametrize("lock", ["off", "on"])
@pytest.mark.parametrize(
    "escape",
    [
        "SET SESSION AUTHORIZATION postgres",
        "SELECT set_config('session_authorization', 'postgres', false)",
        "DO $$BEGIN PERFORM set_config('session_authorization', 'postgres', true); END$$",
    ],
)
def test_a_demoted_login_cannot_change_identity(
    settings: Server, demotable: str, lock: str, escape: str
) -> None:
    """The demoted login switched away first: its restriction still ends the
    session at the next hook, before PostgreSQL 15's login-time superuser flag
    can take it anywhere (the check hook's own layer is the next test's)."""
    settings.set_settings(lock_session_authorization=lock)
    with settings.connect(demotable) as conn:
        conn.execute("SET SESSION AUTHORIZATION reporting")
        conn.execute("SELECT 1")
        demote(settings, demotable)
        before = settings.fingerprint()
        assert_ended(conn, escape, "INSERT INTO trans_rows VALUES (1)")
    assert rows(settings) == 0
    assert settings.fingerprint() == before


@pytest.mark.parametrize(
    "switch",
    [
        "SET SESSION AUTHORIZATION {me}",
        "SELECT set_config('session_authorization', '{me}', false)",
        "DO $$BEGIN PERFORM set_config('session_authorization', '{me}', false); END$$",
    ],
)
def test_a_restricted_login_never_changes_identity(server: Server, switch: str) -> None:
    with server.connect("reporting") as conn:
        refusal = attempt_on(conn, switch.format(me="reporting"))
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
    # Control: an unrestricted login may (PostgreSQL lets any login be itself).
    server.assert_allowed("writer", switch.format(me="writer"))


# ---------------------------------------------------------------------------
# A locked identity, every way a setting is restored (issue 17, item 3)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        ("BEGIN", "SET SESSION AUTHORIZATION analyst", "SELEC 1", "ROLLBACK"),
        ("BEGIN", "SET SESSION AUTHORIZATION analyst", "SELECT * FROM no_such_table", "ROLLBACK"),
        ("BEGIN", "SAVEPOINT s", "SET SESSION AUTHORIZATION analyst", "SELEC 1", "ROLLBACK TO s"),
        ("BEGIN", "SET LOCAL SESSION AUTHORIZATION analyst", "SELEC 1", "ROLLBACK"),
    ],
)
def test_a_locked_identity_survives_aborts(settings: Server, steps: tuple[str, ...]) -> None:
    settings.set_settings(lock_session_authorization="on")
    before = settings.fingerprint()
    with settings.connect("app_login") as conn:
        for step in steps[:-1]:
            attempt_on(conn, step)
        # The restore happened in the failed statement, before any hook: the
        # statement after it ends the session.
        refusal = attempt_on(conn, steps[-1], "INSERT INTO accounts VALUES (171, 1)")
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert "left the restricted identity locked" in (refusal.message or ""), refusal
        assert conn.closed or conn.broken
    assert settings.fingerprint() == before
    # Control: without the lock the app's login gets its identity back and writes.
    settings.set_settings(lock_session_authorization="off")
    with settings.connect("app_login") as conn:
        for step in steps:
            attempt_on(conn, step)
        assert attempt_on(conn, "BEGIN", "INSERT INTO accounts VALUES (171, 1)", "ROLLBACK") is None


# ---------------------------------------------------------------------------
# An identity switch into a restricted role: nothing built before runs
# ---------------------------------------------------------------------------


def test_a_cursor_from_before_an_identity_switch_does_not_run(
    server: Server, objects: None
) -> None:
    for target, refused in (("analyst", True), ("writer", False)):
        with server.connect("app_login") as conn:
            conn.execute("BEGIN")
            conn.execute(
                "DECLARE c CURSOR FOR SELECT nextval('trans_seq') FROM generate_series(1, 5)"
            )
            conn.execute(
                "DECLARE h CURSOR WITH HOLD FOR"
                " SELECT nextval('trans_seq') FROM generate_series(1, 5)"
            )
            conn.execute(f"SET SESSION AUTHORIZATION {target}")
            before = sequence_value(server)
            outcome = attempt_on(conn, "FETCH 2 FROM c")
            if refused:
                assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, outcome
                assert outcome.message == STARTED_UNRESTRICTED
                conn.execute("ROLLBACK")
                assert sequence_value(server) == before
            else:
                assert outcome is None
                assert attempt_on(conn, "COMMIT", "FETCH ALL FROM h") is None
                assert sequence_value(server) == before + 2 + 5


def test_a_with_hold_cursor_from_before_an_identity_switch_does_not_run_at_commit(
    server: Server, objects: None
) -> None:
    """Read-only forcing stops nextval() there; a file writer shows the plan never runs."""
    path = Path(tempfile.mkdtemp(prefix="pysafe-transitions-")) / "held"
    path.parent.chmod(0o777)
    for target, refused in (("analyst", True), ("writer", False)):
        with server.connect("app_login") as conn:
            conn.execute("BEGIN")
            conn.execute(
                "DECLARE h CURSOR WITH HOLD FOR"
                f" SELECT trans_write_file('{path}', 'held') FROM generate_series(1, 5)"
            )
            conn.execute(f"SET SESSION AUTHORIZATION {target}")
            refusal = attempt_on(conn, "COMMIT")
            if refused:
                assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
                assert refusal.message == STARTED_UNRESTRICTED, refusal
                assert not path.exists()
            else:
                assert refusal is None
                assert path.read_text().count("held") == 5


# ---------------------------------------------------------------------------
# Unrestricted sessions and superusers notice nothing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["writer", "postgres"])
def test_unrestricted_sessions_keep_working_through_reloads_and_grants(
    settings: Server, objects: None, user: str
) -> None:
    with settings.connect(user) as conn:
        pid = conn.info.backend_pid
        conn.execute("BEGIN")
        conn.execute("PREPARE put(int) AS INSERT INTO trans_rows VALUES ($1)")
        conn.execute("DECLARE c CURSOR FOR SELECT nextval('trans_seq') FROM generate_series(1, 10)")
        conn.execute("FETCH 1 FROM c")
        conn.execute("SELECT trans_grab(21)")
        unrelated_change(settings)
        assert (
            attempt_on(
                conn,
                "EXECUTE put(1)",
                "FETCH 1 FROM c",
                "SELECT trans_grab(22)",
                "SELECT pg_advisory_lock(23)",
                "COMMIT",
                "DO $$BEGIN FOR i IN 1..3 LOOP INSERT INTO trans_rows VALUES (i); COMMIT;"
                " END LOOP; END$$",
            )
            is None
        )
        assert [row[0] for row in advisory_locks(settings, pid)] == [21, 22, 23]
        conn.execute("SELECT pg_advisory_unlock_all()")
    assert settings.admin("SELECT count(*) FROM trans_rows WHERE x = 1")[0][0] == 2
    settings.admin("TRUNCATE trans_rows")


def test_the_ended_session_is_counted_and_logged(server: Server, role: str) -> None:
    with server.connect(role) as conn:
        conn.execute("SELECT 1")
        server.admin(f"SELECT pysafe.restrict('{role}')")
        assert_ended(conn, "SELECT 1")
    counted = server.admin(
        "SELECT sum(refusals) FROM pysafe.refusals"
        f" WHERE role = '{role}' AND rule = 'became_restricted'"
    )
    assert counted == [(1,)]
    log = server.cluster.log_path.read_text(errors="replace")
    assert '"rule": "became_restricted"' in log
    assert f'role \\"{role}\\" became restricted by pysafe' in log


# ---------------------------------------------------------------------------
# Work that passes no hook until it commits (found by the review)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["restrict", "roles"])
def test_copy_from_stdin_does_not_commit_after_a_restriction(
    settings: Server, role: str, how: str
) -> None:
    """COPY FROM STDIN's rows pass no hook; its commit does, and the session ends there."""
    for user, restricted_meanwhile in ((role, True), ("writer", False)):
        settings.admin("TRUNCATE trans_rows")
        conn = settings.connect(user)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor, cursor.copy("COPY trans_rows FROM STDIN") as copy:
                copy.write_row((1,))
                if restricted_meanwhile:
                    restrict(settings, how, role)
                    time.sleep(0.2)
                for x in range(2, 501):
                    copy.write_row((x,))
            outcome = None
        except psycopg.Error as error:
            outcome = error
        finally:
            conn.close()
        if restricted_meanwhile:
            assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, outcome
            assert ENDED in str(outcome)
            assert rows(settings) == 0
        else:
            assert outcome is None, outcome
            assert rows(settings) == 500  # the unrestricted control commits
    settings.admin("TRUNCATE trans_rows")


def test_a_long_autocommit_statement_does_not_commit_after_a_restriction(
    server: Server, role: str
) -> None:
    """An INSERT ... SELECT still running when the role is restricted is rolled back."""
    statement = "INSERT INTO trans_rows SELECT x FROM generate_series(1, 3) x, pg_sleep(0.5) s"
    results: dict[str, object] = {}

    def run(user: str) -> None:
        try:
            with server.connect(user) as conn:
                conn.autocommit = True
                conn.execute(statement)
            results[user] = None
        except psycopg.Error as error:
            results[user] = error

    worker = threading.Thread(target=run, args=(role,))
    worker.start()
    time.sleep(0.3)
    server.admin(f"SELECT pysafe.restrict('{role}')")
    worker.join(30)
    error = results[role]
    assert isinstance(error, psycopg.Error) and error.sqlstate == READ_ONLY_SQLSTATE, error
    assert ENDED in str(error)
    assert rows(server) == 0
    run("writer")
    assert results["writer"] is None
    assert rows(server) == 3
    server.admin("TRUNCATE trans_rows")


def test_a_login_restricted_while_switched_away_is_ended(server: Server, demotable: str) -> None:
    """A superuser login switched to another identity, demoted and restricted meanwhile."""
    with server.connect(demotable) as conn:
        pid = conn.info.backend_pid
        conn.execute("SELECT pg_advisory_lock(4242)")
        conn.execute("SET SESSION AUTHORIZATION writer")
        conn.execute("SELECT 1")
        demote(server, demotable)
        assert_ended(conn, "SELECT 1", "RESET SESSION AUTHORIZATION")
    wait_gone(server, pid)
    assert advisory_locks(server, pid) == []
    # Control: a superuser login switched away stays, through others' restrictions.
    with server.connect("postgres") as conn:
        conn.execute("SET SESSION AUTHORIZATION writer")
        unrelated_change(server)
        conn.execute("SELECT 1")
        conn.execute("RESET SESSION AUTHORIZATION")
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
