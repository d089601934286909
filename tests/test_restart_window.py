"""Before the restart that preloads the shim, PostgreSQL 17+ sessions are already guarded.

``install`` adds the extension everywhere and lists the shim in
shared_preload_libraries, but the server loads it only at the restart.  On
17 and newer the extension's ``pysafe_login`` event trigger calls a C
function of the shim at every login, so each session loads the shim, and
its hooks, for itself: a restricted session in that window meets the full
checks, not a weaker mode.  Before 17, ``pysafe.roles`` cannot even be
set until the restart, unless ``install --session-preload`` listed
pysafe_session, which loads the shim into each session the same late way.

The shim loads after the startup options are applied, while the pysafe.*
settings are still placeholders a client may fill (``-c pysafe.roles=x``):
the session must still run with the configuration file's values.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from pysafe.install import install
from pysafe.localcluster import LocalCluster
from tests.support import READ_ONLY_SQLSTATE, attempt_on

WRITES = (
    "INSERT INTO window_t VALUES (1)",
    "SELECT lo_create(0)",
    "SELECT nextval('window_seq')",
    "CREATE TABLE window_made (x int)",
)


@pytest.fixture(scope="module")
def unrestarted() -> Iterator[LocalCluster]:
    """A cluster pysafe was installed on, not restarted since."""
    cluster = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        if cluster.major < 17:
            pytest.skip("login event triggers need PostgreSQL 17")
        report = install(cluster.dsn(), cluster.pg_config)
        assert report.restart_needed
        with cluster.connect() as conn:
            for statement in (
                "CREATE ROLE reporting LOGIN",
                "CREATE ROLE writer LOGIN",
                "CREATE TABLE window_t (x int)",
                "CREATE SEQUENCE window_seq",
                "GRANT ALL ON window_t, window_seq TO reporting, writer",
                "GRANT CREATE ON SCHEMA public TO reporting, writer",
                "ALTER SYSTEM SET pysafe.roles = 'reporting'",
                "ALTER SYSTEM SET pysafe.block_all_c_functions = on",
                "SELECT pg_reload_conf()",
            ):
                conn.execute(statement)
        yield cluster
    finally:
        cluster.stop()


def state(cluster: LocalCluster) -> tuple[object, ...]:
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM window_t),"
            " (SELECT count(*) FROM pg_largeobject_metadata),"
            " (SELECT last_value FROM window_seq), to_regclass('window_made') IS NOT NULL,"
            " current_setting('shared_preload_libraries')"
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_restricted_sessions_meet_the_full_checks_before_the_restart(
    unrestarted: LocalCluster,
) -> None:
    before = state(unrestarted)
    assert "pysafe" not in str(before[-1]), "the shim is preloaded already"
    with psycopg.connect(unrestarted.dsn("reporting"), autocommit=True) as conn:
        shown = conn.execute("SHOW default_transaction_read_only").fetchone()
        assert shown == ("on",)
        for write in WRITES:
            refusal = attempt_on(conn, write)
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (write, refusal)
        # Switching read-only off and writing again: the shim's hooks still refuse.
        refusal = attempt_on(conn, "SET default_transaction_read_only = off", WRITES[0])
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        # Nor can the session lift its restriction once in: SET (the shim's veto),
        # set_config() (PostgreSQL's own superuser-only check comes first).
        for change in ("SET pysafe.roles = ''", "SELECT set_config('pysafe.roles', '', false)"):
            refusal = attempt_on(conn, change)
            assert refusal is not None and refusal.sqlstate in {"42501", READ_ONLY_SQLSTATE}, (
                change,
                refusal,
            )
        assert conn.execute("SHOW pysafe.roles").fetchone() == ("reporting",)
    assert state(unrestarted) == before


@pytest.mark.parametrize(
    "options",
    [
        "-c pysafe.roles=nobody",
        "-c pysafe.force_read_only=off -c pysafe.block_dml=off -c pysafe.block_ddl=off",
        "-c pysafe.block_all_c_functions=off -c default_transaction_read_only=off",
    ],
)
def test_startup_options_cannot_lift_the_restriction_before_the_restart(
    unrestarted: LocalCluster, options: str
) -> None:
    before = state(unrestarted)
    with psycopg.connect(unrestarted.dsn("reporting", options=options), autocommit=True) as conn:
        in_force = conn.execute(
            "SELECT current_setting('pysafe.roles'), current_setting('pysafe.force_read_only'),"
            " current_setting('pysafe.block_all_c_functions'),"
            " current_setting('default_transaction_read_only')"
        ).fetchone()
        assert in_force == ("reporting", "on", "on", "on"), options
        for write in WRITES:
            refusal = attempt_on(conn, write)
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (write, refusal)
    assert state(unrestarted) == before


def test_unrestricted_sessions_write_before_the_restart(unrestarted: LocalCluster) -> None:
    before = state(unrestarted)
    with psycopg.connect(unrestarted.dsn("writer"), autocommit=True) as conn:
        for write in WRITES:
            assert attempt_on(conn, write) is None, write
    after = state(unrestarted)
    assert after[0] == int(str(before[0])) + 1 and after[1] == int(str(before[1])) + 1
    assert after[3] is True
    with unrestarted.connect() as conn:
        conn.execute("DROP TABLE window_made")
        conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")


@pytest.fixture(scope="module")
def unrestarted_with_session_preload() -> Iterator[LocalCluster]:
    """Before 17: install --session-preload, not restarted since."""
    cluster = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        if cluster.major >= 17:
            pytest.skip("the login trigger does this on 17+ (the tests above)")
        report = install(cluster.dsn(), cluster.pg_config, session_preload=True)
        assert report.restart_needed
        with cluster.connect() as conn:
            for statement in (
                "CREATE ROLE reporting LOGIN",
                "CREATE TABLE window_t (x int)",
                "CREATE SEQUENCE window_seq",
                "GRANT ALL ON window_t, window_seq TO reporting",
                "GRANT CREATE ON SCHEMA public TO reporting",
            ):
                conn.execute(statement)
        # A new session: pysafe_session.so has loaded the shim, so the setting exists.
        with cluster.connect() as conn:
            conn.execute("ALTER SYSTEM SET pysafe.roles = 'reporting'")
            conn.execute("SELECT pg_reload_conf()")
        yield cluster
    finally:
        cluster.stop()


def test_before_17_session_preload_keeps_the_file_values_before_the_restart(
    unrestarted_with_session_preload: LocalCluster,
) -> None:
    """pysafe_session.so loads the shim late too: the same re-reading applies."""
    cluster = unrestarted_with_session_preload
    before = state(cluster)
    with psycopg.connect(
        cluster.dsn("reporting", options="-c pysafe.roles=nobody"), autocommit=True
    ) as conn:
        in_force = conn.execute(
            "SELECT current_setting('pysafe.roles'),"
            " current_setting('default_transaction_read_only')"
        ).fetchone()
        assert in_force == ("reporting", "on")
        for write in WRITES:
            refusal = attempt_on(conn, write)
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, (write, refusal)
    assert state(cluster) == before
