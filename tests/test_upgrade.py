"""Extension versions: 0.1.0 updates to exactly a fresh 0.2.0, dumps restore,
and install tells when the running shim is not the one it placed (issue 12, item 3)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pysafe import __version__
from pysafe.install import files, install
from pysafe.install.server_facts import read_server_facts
from tests.support import READ_ONLY_SQLSTATE, REPO, Server, attempt_on

FIXTURES = REPO / "tests" / "fixtures"

# Everything the extension is, as text: compared between a fresh install and an update.
SHAPE_QUERY = """
SELECT concat_ws(E'\\n',
  (SELECT extversion || ' in ' || extnamespace::regnamespace FROM pg_extension
    WHERE extname = 'pysafe'),
  (SELECT string_agg(pg_describe_object(classid, objid, 0), E'\\n' ORDER BY 1)
     FROM pg_depend WHERE deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pysafe')),
  (SELECT string_agg(p.oid::regprocedure || ' ' || coalesce(p.proacl::text, '-') || ' '
                     || coalesce(obj_description(p.oid, 'pg_proc'), '-') || E'\\n'
                     || pg_get_functiondef(p.oid), E'\\n' ORDER BY p.oid::regprocedure::text)
     FROM pg_proc p WHERE p.pronamespace::regnamespace::text IN ('pysafe', 'pysafe_internal')),
  (SELECT string_agg(nspname || ' ' || coalesce(nspacl::text, '-') || ' '
                     || coalesce(obj_description(oid, 'pg_namespace'), '-'), E'\\n' ORDER BY 1)
     FROM pg_namespace WHERE nspname IN ('pysafe', 'pysafe_internal')),
  (SELECT string_agg(evtname || ' ' || evtevent || ' ' || evtfoid::regproc || ' '
                     || evtenabled::text, E'\\n' ORDER BY 1)
     FROM pg_event_trigger WHERE evtname LIKE 'pysafe%'))
"""


def shape(server: Server, dbname: str) -> str:
    return str(server.admin(SHAPE_QUERY, dbname)[0][0])


@pytest.fixture
def old_release(server: Server) -> Iterator[Path]:
    """The 0.1.0 control file and script in the server's extension folder, as a
    0.1.0 install left them; the 0.2.0 control file is back afterwards."""
    [(version_num,)] = server.admin("SELECT current_setting('server_version_num')::int")
    paths = files.find_pg_config(int(str(version_num)) // 10000, server.cluster.pg_config)
    control = paths.extension_dir / "pysafe.control"
    current = control.read_text()
    old_script = paths.extension_dir / "pysafe--0.1.0.sql"
    old_script.write_text(files.render_extension_script(paths, FIXTURES / "pysafe--0.1.0.sql.in"))
    control.write_text((FIXTURES / "pysafe-0.1.0.control").read_text())
    try:
        yield paths.extension_dir
    finally:
        control.write_text(current)
        old_script.unlink()


def test_an_update_from_0_1_0_equals_a_fresh_install(server: Server, old_release: Path) -> None:
    for dbname in ("fresh_020", "updated_from_010"):
        server.admin(f"DROP DATABASE IF EXISTS {dbname}")
        server.admin(f"CREATE DATABASE {dbname} TEMPLATE template0")
    try:
        server.admin("CREATE EXTENSION pysafe VERSION '0.1.0' CASCADE", "updated_from_010")
        assert server.admin(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pysafe'",
            "updated_from_010",
        ) == [("public",)]
        # install places the new control file and update script, and updates
        # the extension in every database; the fresh one it creates.
        report = install(server.cluster.dsn(), server.cluster.pg_config)
        assert report.databases["updated_from_010"] == "updated from 0.1.0"
        assert report.databases["fresh_020"] == "created"
        assert report.restart_needed is False, report.steps
        updated = shape(server, "updated_from_010")
        assert updated.startswith(f"{__version__} in pysafe\n")
        assert "schema pysafe_internal" in updated
        assert updated == shape(server, "fresh_020")
        # And it works: the shim finds the policy in pysafe_internal.
        with server.connect("reporting", "updated_from_010") as conn:
            refusal = attempt_on(conn, "CREATE TABLE t (x int)")
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
            assert attempt_on(conn, "SELECT * FROM pysafe.status()") is None
    finally:
        for dbname in ("fresh_020", "updated_from_010"):
            server.admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def test_extension_schema_and_comments(server: Server) -> None:
    [(schema,)] = server.admin(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pysafe'"
    )
    assert schema == "pysafe"  # what \dx shows
    uncommented = server.admin(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = 'pysafe'::regnamespace "
        "AND obj_description(p.oid, 'pg_proc') IS NULL"
    )
    assert uncommented == []
    # The DBA's schema holds no internals, and every internal is in pysafe_internal.
    [(internals,)] = server.admin(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'pysafe_internal'::regnamespace"
    )
    assert int(str(internals)) >= 15
    assert server.admin(
        "SELECT to_regprocedure('pysafe' || '.decide_utility(text,text,text,integer)')"
    ) == [(None,)]


def test_dump_and_restore_of_a_database_with_pysafe(server: Server, tmp_path: Path) -> None:
    server.admin("DROP DATABASE IF EXISTS dumped")
    server.admin("DROP DATABASE IF EXISTS restored")
    server.admin("CREATE DATABASE dumped")
    server.admin("CREATE DATABASE restored TEMPLATE template0")
    try:
        # From template1, which install gave the extension.
        server.admin("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2)", "dumped")
        server.admin("GRANT SELECT ON kept TO PUBLIC", "dumped")
        dump = tmp_path / "dumped.custom"
        bindir = server.cluster.bindir
        subprocess.run(
            [f"{bindir}/pg_dump", "-Fc", "-f", str(dump), server.cluster.dsn(dbname="dumped")],
            check=True,
        )
        restore = subprocess.run(
            [
                f"{bindir}/pg_restore",
                "--exit-on-error",
                "-d",
                server.cluster.dsn(dbname="restored"),
                str(dump),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert restore.returncode == 0, restore.stderr
        assert shape(server, "restored") == shape(server, "dumped")
        with server.connect("reporting", "restored") as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (2,)
            refusal = attempt_on(conn, "INSERT INTO kept VALUES (3)")
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
    finally:
        for dbname in ("dumped", "restored"):
            server.admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


@pytest.mark.parametrize(
    "statement",
    [
        "SET pysafe.shim_build = 'x'",
        "SELECT set_config('pysafe.shim_build', 'x', false)",
        "ALTER SYSTEM SET pysafe.shim_build = 'x'",
        "ALTER DATABASE postgres SET pysafe.shim_build = 'x'",
    ],
)
@pytest.mark.parametrize("user", ["postgres", "reporting", "writer"])
def test_nobody_sets_the_shim_build(server: Server, user: str, statement: str) -> None:
    """The build report is PGC_INTERNAL: install's RESTART NEEDED cannot be silenced."""
    [(before,)] = server.admin("SHOW pysafe.shim_build")
    with server.connect(user) as conn:
        assert attempt_on(conn, statement) is not None
    assert server.admin("SHOW pysafe.shim_build") == [(before,)]


def test_install_knows_which_shim_the_server_runs(server: Server) -> None:
    with server.connect() as conn:
        facts = read_server_facts(conn)
    assert facts.loaded_shim_build == files.shim_build()
    assert facts.loaded_shim_build.startswith(f"{__version__}-")
    # The same build placed again needs no restart; another build would.
    report = install(server.cluster.dsn(), server.cluster.pg_config)
    assert report.restart_needed is False, report.steps
    assert files.restart_needed(True, "0.1.0-000000000000") is True
    assert files.restart_needed(True, None) is True
    assert files.restart_needed(False, None) is False


@pytest.mark.parametrize(
    "prepare",
    [
        "CREATE SCHEMA pysafe AUTHORIZATION writer",
        "CREATE SCHEMA pysafe; CREATE TABLE pysafe.planted (x int)",
        "CREATE SCHEMA pysafe; CREATE FUNCTION pysafe.status() RETURNS int LANGUAGE sql"
        " AS 'SELECT 1'",
    ],
)
def test_a_schema_pysafe_made_by_someone_else_is_not_used(server: Server, prepare: str) -> None:
    """Its owner could drop pysafe's functions, or it holds look-alikes: the
    extension refuses it, by CREATE EXTENSION and by install alike."""
    server.admin("DROP DATABASE IF EXISTS squatted")
    server.admin("CREATE DATABASE squatted TEMPLATE template0")
    try:
        server.admin(prepare, "squatted")
        with server.connect(dbname="squatted") as conn:
            refusal = attempt_on(conn, "CREATE EXTENSION pysafe CASCADE")
        assert refusal is not None and "schema pysafe already exists" in (refusal.message or "")
        with pytest.raises(psycopg.Error, match="schema pysafe already exists"):
            install(server.cluster.dsn(), server.cluster.pg_config)
        assert server.admin(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pysafe'", "squatted"
        ) == [(0,)]
    finally:
        server.admin("DROP DATABASE IF EXISTS squatted WITH (FORCE)")
