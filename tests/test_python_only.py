"""Python-only mode (install --no-shim): what PL/Python and event triggers can do.

A cluster of its own, never restarted with the shim: the DDL veto runs in a
ddl_command_start event trigger that asks the Python policy, read-only
defaults come from a login trigger (17+) or role-level settings (before 17),
and the configuration lives where a restricted role cannot change it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pysafe.localcluster import LocalCluster
from tests.support import (
    assert_without_python_marks,
    attempt_on,
    install_python_only,
    run_cli,
)

LOGIN_EVENTS = 17


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        # Through the CLI, so the --no-shim flag itself is what is tested.
        result = install_python_only(cluster)
        assert "Python-only mode" in result.stdout
        assert "RESTART NEEDED" not in result.stdout
        with cluster.connect() as conn:
            preload = conn.execute("SHOW shared_preload_libraries").fetchone()
            assert preload == ("",)
        with cluster.connect() as conn:
            conn.execute("CREATE ROLE can_write NOLOGIN")
            conn.execute("CREATE ROLE reporting LOGIN IN ROLE can_write")
            conn.execute("CREATE ROLE writer LOGIN IN ROLE can_write")
            conn.execute("GRANT CREATE ON SCHEMA public TO can_write")
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("ALTER TABLE t OWNER TO can_write")
            conn.execute("ALTER SYSTEM SET pysafe.roles = 'reporting'")
            conn.execute("SELECT pg_reload_conf()")
            if cluster.major < LOGIN_EVENTS:
                assert conn.execute("SELECT pysafe.apply_role_defaults()").fetchall() == [
                    ("reporting",)
                ]
        yield cluster
    finally:
        cluster.stop()


def refusal_of(cluster: LocalCluster, user: str, *statements: str) -> tuple[str | None, str | None]:
    with cluster.connect(user) as conn:
        refusal = attempt_on(conn, *statements)
    return (None, None) if refusal is None else (refusal.sqlstate, refusal.message)


def tables(cluster: LocalCluster) -> int:
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_no_shim_is_loaded(cluster: LocalCluster) -> None:
    with cluster.connect() as conn:
        assert conn.execute("SELECT pysafe_internal.shim_loaded()").fetchone() == (False,)
        languages = conn.execute(
            "SELECT DISTINCT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
            "WHERE p.pronamespace = 'pysafe'::regnamespace ORDER BY 1"
        ).fetchall()
    assert ("c",) not in languages


# Without the shim a session can switch its read-only default off (see
# test_weaker_as_status_says); doing so first shows the DDL veto holding alone.
READ_WRITE = "SET default_transaction_read_only = off"


def test_ddl_veto_asks_the_python_policy(cluster: LocalCluster) -> None:
    before = tables(cluster)
    assert refusal_of(cluster, "reporting", READ_WRITE, "CREATE TABLE mine (x int)") == (
        "25006",
        "cannot execute CREATE TABLE in a read-only session",
    )
    assert refusal_of(cluster, "reporting", READ_WRITE, "GRANT SELECT ON t TO writer") == (
        "25006",
        "cannot execute privilege changes in a read-only session",
    )
    assert refusal_of(cluster, "reporting", READ_WRITE, "DROP TABLE t") == (
        "25006",
        "cannot execute DROP TABLE in a read-only session",
    )
    # With the read-only default in place, PostgreSQL itself refuses first.
    state, _ = refusal_of(cluster, "reporting", "CREATE TABLE mine (x int)")
    assert state == "25006"
    assert tables(cluster) == before
    # Control: the unrestricted role with the same privileges can.
    assert refusal_of(cluster, "writer", "BEGIN", "CREATE TABLE mine (x int)", "ROLLBACK") == (
        None,
        None,
    )


def test_the_veto_logs_its_refusals(cluster: LocalCluster) -> None:
    statement = "CREATE TABLE logged_probe (x int)"
    assert refusal_of(cluster, "reporting", READ_WRITE, statement)[0] == "25006"
    lines = [
        line.split("pysafe refusal: ", 1)[1]
        for line in cluster.log_path.read_text(errors="replace").splitlines()
        if "pysafe refusal: " in line and "logged_probe" in line
    ]
    assert [json.loads(line)["rule"] for line in lines] == ["utility"]


def test_errors_from_the_python_policy_carry_no_python_marks(cluster: LocalCluster) -> None:
    """A statement_timeout during the veto's decision is 57014, as itself; a
    DBA function's error is PostgreSQL's own too (test_clean_errors.py)."""
    huge = "CREATE TABLE huge AS SELECT 1 AS a WHERE 1 IN ({})".format(
        ", ".join(str(n) for n in range(36_000))
    )
    before = tables(cluster)
    with cluster.connect("reporting") as conn:
        conn.execute(READ_WRITE)
        # Refused by the policy: Python is loaded, so the timer runs during its parse.
        warm = attempt_on(conn, "CREATE TABLE warm (x int)")
        assert warm is not None and warm.sqlstate == "25006", warm
        conn.execute("SET statement_timeout = '60ms'")
        outcome = attempt_on(conn, huge)
        assert outcome is not None and outcome.sqlstate == "57014", outcome
        assert outcome.message == "canceling statement due to statement timeout", outcome
        assert_without_python_marks(outcome)
        conn.execute("SET statement_timeout = 0")
        refusal = attempt_on(conn, huge)
        assert refusal is not None and refusal.sqlstate == "25006", refusal
        parse_error = attempt_on(conn, "SELECT * FROM pysafe.check('SELEC 1')")
    assert parse_error is not None and parse_error.sqlstate == "42601", parse_error
    assert_without_python_marks(parse_error)
    assert tables(cluster) == before


def test_restricted_sessions_start_read_only(cluster: LocalCluster) -> None:
    with cluster.connect("reporting") as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        refusal = attempt_on(conn, "INSERT INTO t VALUES (1)")
    assert refusal is not None and refusal.sqlstate == "25006"
    with cluster.connect("writer") as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)


def test_restrict_and_unrestrict_in_python_only_mode(cluster: LocalCluster) -> None:
    with cluster.connect() as conn:
        conn.execute("CREATE ROLE latecomer LOGIN IN ROLE can_write")
        conn.execute("SELECT pysafe.restrict('latecomer')")
    try:
        with cluster.connect("latecomer") as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            refusal = attempt_on(conn, READ_WRITE, "CREATE TABLE mine (x int)")
        assert refusal is not None and refusal.sqlstate == "25006"
        with cluster.connect() as conn:
            conn.execute("SELECT pysafe.unrestrict('latecomer')")
        with cluster.connect("latecomer") as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    finally:
        with cluster.connect() as conn:
            conn.execute("DROP ROLE latecomer")


def test_configuration_cannot_be_changed_by_the_restricted_role(cluster: LocalCluster) -> None:
    """pysafe.* are placeholders here; the policy reads the config files instead."""
    with cluster.connect("reporting") as conn:
        assert attempt_on(conn, READ_WRITE) is None
        assert attempt_on(conn, "SET pysafe.roles = ''") is None  # a placeholder: allowed ...
        refusal = attempt_on(conn, "CREATE TABLE mine (x int)")  # ... and ignored
        assert refusal is not None and refusal.sqlstate == "25006"
        # ALTER ROLE fires no event trigger (roles are global objects); PostgreSQL
        # refuses it here (the setting is in a config file), and were it allowed ...
        refusal = attempt_on(conn, "ALTER ROLE reporting SET pysafe.roles = ''")
        assert refusal is None or refusal.sqlstate == "42501"
        altered = refusal is None
    try:
        with cluster.connect("reporting") as conn:
            assert attempt_on(conn, READ_WRITE) is None
            if altered:
                assert conn.execute("SHOW pysafe.roles").fetchone() == ("",)
            # ... and changes nothing either.
            assert conn.execute("SELECT pysafe.session_is_restricted()").fetchone() == (True,)
            refusal = attempt_on(conn, "CREATE TABLE mine (x int)")
            assert refusal is not None and refusal.sqlstate == "25006"
    finally:
        with cluster.connect() as conn:
            conn.execute("ALTER ROLE reporting RESET pysafe.roles")


def test_status_says_what_is_and_is_not_live(cluster: LocalCluster) -> None:
    with cluster.connect("reporting") as conn:
        rows = {p: live for p, live, _ in conn.execute("SELECT * FROM pysafe.status()")}
    assert rows["mode"] is False
    assert rows["this session restricted"] is True
    assert rows["DDL veto by event trigger"] is True
    assert rows["read-only defaults at login"] is True
    for shim_only in (
        "read-only forcing at every statement",
        "DML refused at executor start",
        "side-effecting functions refused",
        "utility veto on every utility statement",
        "read-only settings protected on every path",
    ):
        assert rows[shim_only] is False


def test_weaker_as_status_says(cluster: LocalCluster) -> None:
    """Without the shim a restricted session can switch its read-only default off.

    This is the gap "read-only settings protected on every path: off" reports;
    the test keeps the Python-only table of docs/coverage.md honest.
    """
    with cluster.connect("reporting") as conn:
        assert attempt_on(conn, "SET default_transaction_read_only = off") is None
        assert attempt_on(conn, "BEGIN", "INSERT INTO t VALUES (1)", "ROLLBACK") is None


def test_refusals_are_not_counted_and_say_so(cluster: LocalCluster) -> None:
    with cluster.connect() as conn:
        for query in ("SELECT * FROM pysafe.refusals", "SELECT pysafe.reset_refusals()"):
            refusal = attempt_on(conn, query)
            assert refusal is not None and refusal.sqlstate == "55000", (query, refusal)
            assert refusal.message is not None and "only with its shim" in refusal.message
        [(live, detail)] = conn.execute(
            "SELECT live, detail FROM pysafe.status() WHERE protection = 'refusals counted'"
        ).fetchall()
    assert live is False and "only the server log" in str(detail)
    result = run_cli("status", "--dsn", cluster.dsn())
    assert result.returncode == 0, result.stderr
    assert "refusals: pysafe counts refusals only with its shim" in result.stdout
