"""python -m pysafe install / uninstall against a cluster of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from pysafe.install import InstallError, install
from pysafe.install.connection import connect
from pysafe.install.files import find_pg_config
from pysafe.install.restart import debian_cluster
from pysafe.install.server_facts import ServerFacts, require_installable
from pysafe.localcluster import LocalCluster
from tests.support import REPO, attempt_on, pg_config, run_cli


def file_setting(cluster: LocalCluster, name: str) -> str | None:
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT setting FROM pg_file_settings WHERE name = %s ORDER BY seqno DESC LIMIT 1",
            [name],
        ).fetchone()
    return None if row is None else str(row[0])


def extension_in(cluster: LocalCluster, dbname: str) -> bool:
    with cluster.connect(dbname=dbname) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pysafe'").fetchone()
            is not None
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A bare cluster that already preloads another library."""
    cluster = LocalCluster().start()
    with cluster.connect() as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        conn.execute("CREATE ROLE nosuper LOGIN")
        conn.execute("CREATE DATABASE appdb")
    cluster.restart()
    yield cluster
    cluster.stop()


def test_refusals_change_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    result = run_cli("install", "--dsn", cluster.dsn(user="nosuper"), *pg_config(cluster))
    assert result.returncode != 0
    assert "superuser" in result.stderr
    fake = tmp_path / "pg_config"
    fake.write_text("#!/bin/sh\necho 'PostgreSQL 99.1'\n")
    fake.chmod(0o755)
    result = run_cli("install", "--dsn", cluster.dsn(), "--pg-config", str(fake))
    assert result.returncode != 0
    assert f"postgresql-server-dev-{cluster.major}" in result.stderr
    assert "--pg-config" in result.stderr
    result = run_cli("install", "--dsn", "host=127.0.0.1 port=1 user=postgres connect_timeout=2")
    assert result.returncode != 0
    assert "cannot connect" in result.stderr
    # A server without PL/Python: its control file hidden, as if the package were missing.
    sharedir = subprocess.run(
        [str(cluster.pg_config), "--sharedir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    control = Path(sharedir) / "extension" / "plpython3u.control"
    hidden = control.with_name("plpython3u.control.hidden-by-test")
    control.rename(hidden)
    try:
        result = run_cli("install", "--dsn", cluster.dsn(), *pg_config(cluster))
    finally:
        hidden.rename(control)
    assert result.returncode != 0
    assert f"postgresql-plpython3-{cluster.major}" in result.stderr
    assert file_setting(cluster, "shared_preload_libraries") == "pg_stat_statements"
    assert not extension_in(cluster, "postgres")


@pytest.mark.parametrize(
    ("facts", "fix"),
    [
        (ServerFacts(150000, False, True, False, False), "superuser"),
        (ServerFacts(130000, True, True, False, False), "PostgreSQL 14 or newer"),
        (ServerFacts(150000, True, False, False, False), "postgresql-plpython3-15"),
    ],
)
def test_preflight_messages_name_the_fix(facts: ServerFacts, fix: str) -> None:
    with pytest.raises(InstallError, match=fix):
        require_installable(facts)


def test_install_restart_and_idempotent_rerun(cluster: LocalCluster) -> None:
    first = run_cli("install", "--dsn", cluster.dsn(), *pg_config(cluster))
    assert first.returncode == 0, first.stderr
    assert "RESTART NEEDED" in first.stdout
    # Not a Debian cluster: pg_ctl on its data directory, as the server's OS user.
    assert f"pg_ctl restart -D {cluster.datadir}" in first.stdout
    for dbname in ("appdb", "postgres", "template1"):
        assert f"database {dbname}" in first.stdout
        assert extension_in(cluster, dbname)
    assert "created" in first.stdout
    assert "role pysafe_restricted created" in first.stdout
    assert "refused volatile built-ins for the shim" in first.stdout
    assert file_setting(cluster, "shared_preload_libraries") == "pg_stat_statements, pysafe"

    cluster.restart()
    with cluster.connect() as conn:
        loaded = conn.execute("SHOW shared_preload_libraries").fetchone()
        assert loaded == ("pg_stat_statements, pysafe",)
        conn.execute("DROP EXTENSION pysafe")  # something for the rerun to fix

    second = run_cli("install", "--dsn", cluster.dsn(), *pg_config(cluster))
    assert second.returncode == 0, second.stderr
    assert "RESTART NEEDED" not in second.stdout
    outcomes = {
        words[1]: words[2]
        for words in (line.split() for line in second.stdout.splitlines())
        if words and words[0] == "database"
    }
    assert outcomes == {"appdb": "already", "postgres": "created", "template1": "already"}
    assert file_setting(cluster, "shared_preload_libraries") == "pg_stat_statements, pysafe"


@pytest.mark.parametrize(
    ("config_file", "cluster_name"),
    [
        ("/etc/postgresql/15/main/postgresql.conf", ("15", "main")),
        ("/etc/postgresql/18/reports/postgresql.conf", ("18", "reports")),
        ("/var/lib/postgresql/data/postgresql.conf", None),
        ("/etc/postgresql/15/main/conf.d/postgresql.conf", None),
    ],
)
def test_debian_clusters_are_found_by_their_config_file(
    config_file: str, cluster_name: tuple[str, str] | None
) -> None:
    assert debian_cluster(PurePosixPath(config_file)) == cluster_name


@pytest.mark.skipif(os.geteuid() != 0, reason="peer connections are made when run as root")
def test_root_connects_over_a_socket_as_postgres(cluster: LocalCluster) -> None:
    """No user in the DSN: as root, pysafe connects as postgres, then is root again."""
    with connect(f"host={cluster.workdir} port={cluster.port} dbname=postgres") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    assert (os.geteuid(), os.getegid()) == (0, 0)


def test_new_databases_get_pysafe_from_template1(cluster: LocalCluster) -> None:
    with cluster.connect() as conn:
        conn.execute("CREATE DATABASE later")
    assert extension_in(cluster, "later")


def test_uninstall_leaves_an_unrestricted_cluster(cluster: LocalCluster) -> None:
    paths = find_pg_config(cluster.major, cluster.pg_config)
    with cluster.connect() as conn:
        conn.execute("CREATE ROLE limited LOGIN")
        conn.execute("CREATE TABLE t (x int); GRANT ALL ON t TO limited")
        conn.execute("GRANT CREATE ON SCHEMA public TO limited")
        conn.execute("ALTER SYSTEM SET pysafe.roles = 'limited'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        result = run_cli("uninstall", "--dsn", cluster.dsn(), *pg_config(cluster))
        assert result.returncode == 0, result.stderr
        assert "RESTART NEEDED" in result.stdout
        for dbname in ("appdb", "postgres", "template1", "later"):
            assert not extension_in(cluster, dbname)
        assert file_setting(cluster, "shared_preload_libraries") == "pg_stat_statements"
        assert file_setting(cluster, "pysafe.roles") is None
        assert not paths.python_dir.exists()
        assert not paths.python_dir.parent.joinpath("refused_builtins").exists()
        assert not paths.shim_library.exists()
        assert not (paths.extension_dir / "pysafe.control").exists()
        cluster.restart()
        with cluster.connect("limited") as conn:
            assert attempt_on(conn, "INSERT INTO t VALUES (1)", "CREATE TABLE mine (x int)") is None
        with cluster.connect() as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_settings WHERE name LIKE 'pysafe.%'"
            ).fetchone() == (0,)
            assert conn.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname = 'pysafe_restricted'"
            ).fetchone() == (0,)
    finally:
        # Other test modules share the server's folders: put the files back.
        install(cluster.dsn(), cluster.pg_config)


def test_session_preload_option(cluster: LocalCluster) -> None:
    """Before 17, --session-preload reports read-only defaults at connection."""
    result = run_cli("install", "--dsn", cluster.dsn(), "--session-preload", *pg_config(cluster))
    if cluster.major >= 17:
        assert result.returncode != 0
        assert "login event trigger" in result.stderr
        assert file_setting(cluster, "session_preload_libraries") is None
        return
    assert result.returncode == 0, result.stderr
    assert file_setting(cluster, "session_preload_libraries") == "pysafe_session"
    with cluster.connect() as conn:
        conn.execute("CREATE ROLE preloaded LOGIN")
        conn.execute("ALTER SYSTEM SET pysafe.roles = 'preloaded'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        with cluster.connect("preloaded") as conn:
            assert conn.info.parameter_status("default_transaction_read_only") == "on"
        with cluster.connect() as conn:
            assert conn.info.parameter_status("default_transaction_read_only") == "off"
    finally:
        with cluster.connect() as conn:
            conn.execute("ALTER SYSTEM RESET pysafe.roles")
            conn.execute("ALTER SYSTEM RESET session_preload_libraries")
            conn.execute("SELECT pg_reload_conf()")


def test_install_from_the_wheel(cluster: LocalCluster, tmp_path: Path) -> None:
    """pip's package, not the checkout: the wheel carries sql/ and installer/."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("pysafe-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import pysafe; print(pysafe.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert where.stdout.startswith(str(target))
    result = subprocess.run(
        [sys.executable, "-m", "pysafe", "install", "--dsn", cluster.dsn(), *pg_config(cluster)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "database postgres" in result.stdout
