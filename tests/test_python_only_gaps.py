"""Python-only mode (install --no-shim): what a restricted role can still do, and what is closed.

Without the shim nothing guards the read-only settings, and neither TRUNCATE
nor ALTER ROLE fires an event trigger: only the read-only default refuses
them, and a session can switch it off.  The gap tests assert that each gap
exists, so README.md's Known gaps, docs/coverage.md and pysafe.status() stay
true; if one closes, its test fails and the docs must change with it.

What is closed: before 17, a restricted role that resets its own read-only
default (or overrides it per database) is named by pysafe.status() and
pysafe.audit(), and pysafe.apply_role_defaults() sets it again, per-database
values included; from 17 the login trigger starts every next session
read-only whatever the role did to its own defaults.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from pysafe import LOGIN_EVENT_VERSION
from pysafe.localcluster import LocalCluster
from tests.support import attempt_on, install_python_only, run_cli

LOGIN_EVENTS = LOGIN_EVENT_VERSION // 10000
READ_WRITE = "SET default_transaction_read_only = off"
SELF_CHANGE_ROW = "TRUNCATE and ALTER ROLE on itself refused"
LOGIN_ROW = "read-only defaults at login"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        install_python_only(cluster)
        with cluster.connect() as conn:
            assert conn.execute("SELECT pysafe_internal.shim_loaded()").fetchone() == (False,)
            conn.execute("CREATE ROLE can_write NOLOGIN")
            conn.execute("CREATE ROLE reporting LOGIN IN ROLE can_write")
            conn.execute("CREATE ROLE writer LOGIN IN ROLE can_write")
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("ALTER TABLE t OWNER TO can_write")
            conn.execute("ALTER SYSTEM SET pysafe.roles = 'reporting'")
            conn.execute("SELECT pg_reload_conf()")
            if cluster.major < LOGIN_EVENTS:
                conn.execute("SELECT pysafe.apply_role_defaults()")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def rows(cluster: LocalCluster) -> Iterator[None]:
    """Three rows in t; afterwards t holds them again and reporting's defaults are pysafe's."""
    with cluster.connect() as conn:
        conn.execute("TRUNCATE t")
        conn.execute("INSERT INTO t VALUES (1), (2), (3)")
    yield
    with cluster.connect() as conn:
        conn.execute("TRUNCATE t")
        conn.execute("INSERT INTO t VALUES (1), (2), (3)")
        conn.execute("ALTER ROLE reporting PASSWORD NULL")
        conn.execute("ALTER ROLE reporting RESET ALL")
        conn.execute("ALTER ROLE reporting IN DATABASE postgres RESET ALL")
        if cluster.major < LOGIN_EVENTS:
            conn.execute("SELECT pysafe.apply_role_defaults()")


def count(cluster: LocalCluster) -> int:
    with cluster.connect() as conn:
        row = conn.execute("SELECT count(*) FROM t").fetchone()
    assert row is not None
    return int(row[0])


def role_settings(cluster: LocalCluster, role: str) -> list[tuple[bool, list[str]]]:
    """(per database?, settings) of a role, as a superuser reads pg_db_role_setting."""
    with cluster.connect() as conn:
        return [
            (bool(per_database), list(config))
            for per_database, config in conn.execute(
                "SELECT s.setdatabase <> 0, s.setconfig FROM pg_db_role_setting s "
                "WHERE s.setrole = %s::regrole ORDER BY 1",
                (role,),
            )
        ]


def status_of(cluster: LocalCluster, user: str) -> dict[str, tuple[bool, str]]:
    with cluster.connect(user) as conn:
        return {p: (live, d) for p, live, d in conn.execute("SELECT * FROM pysafe.status()")}


def audit_objects(cluster: LocalCluster) -> list[tuple[str, str, str]]:
    """(severity, object, fix) of the audit's findings about read-only defaults."""
    with cluster.connect() as conn:
        return [
            (severity, obj, fix)
            for severity, finding, obj, fix in conn.execute("SELECT * FROM pysafe.audit()")
            if "default_transaction_read_only" in finding
        ]


def refused(cluster: LocalCluster, user: str, *statements: str, **extra: str) -> str | None:
    with psycopg.connect(cluster.dsn(user, **extra), autocommit=True) as conn:
        refusal = attempt_on(conn, *statements)
    return None if refusal is None else refusal.sqlstate


# --- gaps: each test asserts the gap is there --------------------------------


@pytest.mark.usefixtures("rows")
def test_gap_truncate_is_refused_only_by_the_read_only_default(cluster: LocalCluster) -> None:
    """TRUNCATE is no DDL event: once a session switches read-only off it runs."""
    with cluster.connect("reporting") as conn:
        refusal = attempt_on(conn, "TRUNCATE t")
        assert refusal is not None and refusal.sqlstate == "25006"
        assert refusal.message == "cannot execute TRUNCATE TABLE in a read-only transaction"
        assert count(cluster) == 3
        # The gap: nothing but the default stood in the way.
        assert attempt_on(conn, READ_WRITE, "TRUNCATE t") is None
    assert count(cluster) == 0


@pytest.mark.usefixtures("rows")
def test_gap_alter_role_on_itself(cluster: LocalCluster) -> None:
    """ALTER ROLE fires no event trigger: a restricted role changes its password and defaults."""
    with cluster.connect("reporting") as conn:
        refusal = attempt_on(conn, "ALTER ROLE reporting PASSWORD 'changed'")
        assert refusal is not None and refusal.sqlstate == "25006"
        assert refusal.message == "cannot execute ALTER ROLE in a read-only transaction"
        with cluster.connect() as su:
            assert su.execute(
                "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'reporting'"
            ).fetchone() == (True,)
        assert attempt_on(conn, READ_WRITE) is None
        # The gap: its own password and its own session defaults ...
        assert attempt_on(conn, "ALTER ROLE reporting PASSWORD 'changed'") is None
        assert attempt_on(conn, "ALTER ROLE reporting SET work_mem = '2MB'") is None
        # ... though PostgreSQL keeps it from other roles.
        other = attempt_on(conn, "ALTER ROLE writer PASSWORD 'changed'")
        assert other is not None and other.sqlstate == "42501"
    with cluster.connect() as su:
        assert su.execute(
            "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'reporting'"
        ).fetchone() == (True,)
        assert su.execute(
            "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'writer'"
        ).fetchone() == (True,)
    assert any("work_mem=2MB" in config for _, config in role_settings(cluster, "reporting"))


@pytest.mark.usefixtures("rows")
@pytest.mark.parametrize(
    "writes",
    [
        (READ_WRITE, "INSERT INTO t VALUES (4)"),
        (
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "INSERT INTO t VALUES (4)",
        ),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "INSERT INTO t VALUES (4)"),
        ("BEGIN READ WRITE", "INSERT INTO t VALUES (4)", "COMMIT"),
        ("BEGIN", "SET TRANSACTION READ WRITE", "INSERT INTO t VALUES (4)", "COMMIT"),
    ],
    ids=["SET", "set_config", "SESSION CHARACTERISTICS", "BEGIN READ WRITE", "SET TRANSACTION"],
)
def test_gap_a_session_switches_read_only_off(
    cluster: LocalCluster, writes: tuple[str, ...]
) -> None:
    """No check hook without the shim: every per-session path works, and then DML commits."""
    assert refused(cluster, "reporting", "INSERT INTO t VALUES (4)") == "25006"
    assert count(cluster) == 3
    assert refused(cluster, "reporting", *writes) is None
    assert count(cluster) == 4


@pytest.mark.usefixtures("rows")
def test_gap_copy_from_after_read_only_is_off(cluster: LocalCluster) -> None:
    """COPY FROM is no DDL event either: refused by the default alone."""
    with cluster.connect("reporting") as conn:
        with (
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
            conn.cursor().copy("COPY t FROM STDIN") as copy,
        ):
            copy.write_row((4,))
        conn.execute(READ_WRITE)
        with conn.cursor().copy("COPY t FROM STDIN") as copy:
            copy.write_row((4,))
    assert count(cluster) == 4


@pytest.mark.usefixtures("rows")
def test_startup_option_turning_read_only_off(cluster: LocalCluster) -> None:
    """-c default_transaction_read_only=off: a gap before 17; from 17 the login trigger wins."""
    option = {"options": "-c default_transaction_read_only=off"}
    state = refused(cluster, "reporting", "INSERT INTO t VALUES (4)", **option)
    if cluster.major < LOGIN_EVENTS:
        assert state is None  # the gap: a client setting beats a role-level default
        assert count(cluster) == 4
    else:
        assert state == "25006"
        assert count(cluster) == 3
    # Control: the unrestricted role writes either way.
    assert (
        refused(cluster, "writer", "BEGIN", "INSERT INTO t VALUES (5)", "ROLLBACK", **option)
        is None
    )


# --- its own defaults: a gap before 17 that status and audit name and ------
# --- apply_role_defaults() closes again; closed from 17 by the login trigger -

OWN_DEFAULT_CHANGES = {
    "RESET": "ALTER ROLE reporting RESET default_transaction_read_only",
    "SET off": "ALTER ROLE reporting SET default_transaction_read_only = off",
    "IN DATABASE": "ALTER ROLE reporting IN DATABASE postgres "
    "SET default_transaction_read_only = off",
    "RESET ALL": "ALTER ROLE reporting RESET ALL",
}


@pytest.mark.usefixtures("rows")
@pytest.mark.parametrize("change", list(OWN_DEFAULT_CHANGES), ids=list(OWN_DEFAULT_CHANGES))
def test_own_default_changed_by_the_restricted_role(cluster: LocalCluster, change: str) -> None:
    with cluster.connect("reporting") as conn:
        assert attempt_on(conn, READ_WRITE, OWN_DEFAULT_CHANGES[change]) is None
    with cluster.connect("reporting") as conn:
        next_default = conn.execute("SHOW default_transaction_read_only").fetchone()
        insert = attempt_on(conn, "INSERT INTO t VALUES (4)")
    if cluster.major >= LOGIN_EVENTS:
        # Closed: the login trigger sets it at every login.
        assert next_default == ("on",)
        assert insert is not None and insert.sqlstate == "25006"
        assert count(cluster) == 3
        assert status_of(cluster, "reporting")[LOGIN_ROW][0] is True
        assert audit_objects(cluster) == []
        return
    # The gap: its next session starts read-write and writes without any SET ...
    assert next_default == ("off",)
    assert insert is None and count(cluster) == 4
    # ... which status (to any session) and audit name ...
    live, detail = status_of(cluster, "writer")[LOGIN_ROW]
    assert live is False and detail.startswith("not live for reporting:"), detail
    assert audit_objects(cluster) == [
        ("high", "role reporting", "SELECT pysafe.apply_role_defaults()")
    ]
    # ... and apply_role_defaults() closes again, per-database values too.
    with cluster.connect() as conn:
        assert conn.execute("SELECT pysafe.apply_role_defaults()").fetchall() == [("reporting",)]
    assert role_settings(cluster, "reporting") == [(False, ["default_transaction_read_only=on"])]
    with cluster.connect("reporting") as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        insert = attempt_on(conn, "INSERT INTO t VALUES (5)")
    assert insert is not None and insert.sqlstate == "25006"
    assert count(cluster) == 4
    assert status_of(cluster, "reporting")[LOGIN_ROW][0] is True
    assert audit_objects(cluster) == []


def test_apply_role_defaults_leaves_unrestricted_roles_alone(cluster: LocalCluster) -> None:
    """Control: a per-database read-write default of an unrestricted role stays."""
    if cluster.major >= LOGIN_EVENTS:
        pytest.skip("role-level defaults are Python-only mode before 17")
    with cluster.connect() as conn:
        conn.execute(
            "ALTER ROLE writer IN DATABASE postgres SET default_transaction_read_only = off"
        )
    try:
        with cluster.connect() as conn:
            conn.execute("SELECT pysafe.apply_role_defaults()")
        assert role_settings(cluster, "writer") == [(True, ["default_transaction_read_only=off"])]
        with cluster.connect("writer") as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    finally:
        with cluster.connect() as conn:
            conn.execute("ALTER ROLE writer IN DATABASE postgres RESET ALL")


# --- status says it ----------------------------------------------------------


def test_status_names_the_gaps(cluster: LocalCluster) -> None:
    live, detail = status_of(cluster, "reporting")[SELF_CHANGE_ROW]
    assert live is False
    for words in (
        "SET default_transaction_read_only = off",
        "TRUNCATE",
        "its own password",
        "its own defaults",
    ):
        assert words in detail, (words, detail)
    if cluster.major >= LOGIN_EVENTS:
        assert "login trigger still starts the next sessions read-only" in detail
    else:
        assert "makes its next sessions read-write" in detail
    result = run_cli("status", "--dsn", cluster.dsn(user="reporting"))
    assert result.returncode == 0, result.stderr
    assert f"off   {SELF_CHANGE_ROW}" in result.stdout
