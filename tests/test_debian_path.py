"""The README's server path, run as written on a cluster made by Debian's pg_createcluster.

The commands are read from README.md: the ``sh`` block after the marker
comment ``<!-- debian-path: ... -->``.  The test runs them in order as root,
from the checkout, in a fresh root shell's PATH, with two substitutions
only: its own cluster for the README's ``15 main`` (also in the log file's
name), and a scratch folder for the README's ``/opt/pysafe``; PGPORT points
libpq, psql and pysafe at the cluster's port.  The block's last line, the
log grep, runs after a restricted role has been refused.

It needs root, postgresql-common's pg_createcluster and the system's
PostgreSQL 15 under test (PYSAFE_PG_BINDIR=/usr/lib/postgresql/15/bin, as on
.ci/run's first pass); elsewhere it is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from pysafe.install.connection import connect
from pysafe.localcluster import DEFAULT_BINDIR, free_port
from tests.support import REPO

MARKER = "<!-- debian-path:"
README_CLUSTER = "15 main"
README_LOG_NAME = "postgresql-15-main.log"
README_VENV = "/opt/pysafe"
SYSTEM_BINDIR = Path("/usr/lib/postgresql/15/bin")
# A fresh root shell's PATH on Debian: no virtual environment, no pyenv.
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWORD = "debian-path"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the README's server path runs as root"
    if shutil.which("pg_createcluster") is None:
        return "needs postgresql-common's pg_createcluster (Debian's cluster tools)"
    if DEFAULT_BINDIR.resolve() != SYSTEM_BINDIR.resolve():
        return f"the README's path is for the system PostgreSQL 15; testing {DEFAULT_BINDIR}"
    return None


pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def readme_commands() -> list[str]:
    """The non-empty lines of the README's marked sh block."""
    lines = (REPO / "README.md").read_text().splitlines()
    marked = [i for i, line in enumerate(lines) if line.startswith(MARKER)]
    assert len(marked) == 1, f"README.md needs exactly one {MARKER} block"
    start = marked[0] + 1
    assert lines[start] == "```sh", "the marker must sit right above a ```sh block"
    end = lines.index("```", start + 1)
    return [line for line in lines[start + 1 : end] if line.strip()]


@dataclass(frozen=True)
class DebianCluster:
    name: str
    port: int

    def adapt(self, command: str, venv: Path) -> str:
        """A README command aimed at this cluster and this test's virtual environment."""
        return (
            command.replace(README_CLUSTER, f"15 {self.name}")
            .replace(README_LOG_NAME, f"postgresql-15-{self.name}.log")
            .replace(README_VENV, str(venv))
        )

    def shell_env(self) -> dict[str, str]:
        kept = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PG", "PYTHON", "VIRTUAL_ENV"))
        }
        return {**kept, "PATH": ROOT_PATH, "PGPORT": str(self.port)}

    def superuser(self) -> psycopg.Connection:
        """Over the socket as postgres: peer authentication, as the README's install does."""
        return connect(f"host=/var/run/postgresql port={self.port} user=postgres dbname=postgres")

    def login(self, role: str) -> psycopg.Connection:
        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={role} password={PASSWORD} dbname=postgres",
            autocommit=True,
        )


@pytest.fixture
def debian_cluster() -> Iterator[DebianCluster]:
    cluster = DebianCluster(name=f"pysafe_test_{os.getpid()}", port=free_port())
    subprocess.run(
        ["pg_createcluster", "15", cluster.name, "-p", str(cluster.port), "--start"],
        capture_output=True,
        text=True,
        check=True,
    )
    try:
        yield cluster
    finally:
        subprocess.run(
            ["pg_dropcluster", "--stop", "15", cluster.name], capture_output=True, check=False
        )


def run_line(command: str, cluster: DebianCluster) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=REPO,
        env=cluster.shell_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def rows_in_ledger(cluster: DebianCluster) -> int:
    with cluster.superuser() as conn:
        row = conn.execute("SELECT count(*) FROM ledger").fetchone()
    assert row is not None
    return int(row[0])


def test_readme_server_path(debian_cluster: DebianCluster, tmp_path: Path) -> None:
    cluster = debian_cluster
    commands = [cluster.adapt(line, tmp_path / "venv") for line in readme_commands()]
    *setup, log_grep = commands
    assert log_grep.startswith("grep "), "the block's last line greps the log for refusals"
    outputs = [run_line(command, cluster) for command in setup]
    ran = dict(zip(setup, outputs, strict=True))
    install_output = next(out for line, out in ran.items() if "-m pysafe install" in line)
    # install names the restart command the README runs next.
    assert "RESTART NEEDED" in install_output.stdout
    assert f"pg_ctlcluster 15 {cluster.name} restart" in install_output.stdout

    with cluster.superuser() as conn:
        assert conn.execute("SHOW pysafe.roles").fetchone() == ("reporting",)
        conn.execute(f"CREATE ROLE reporting LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE ROLE writer LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("CREATE TABLE ledger (id int)")
        conn.execute("GRANT SELECT, INSERT ON ledger TO reporting, writer")

    with cluster.login("reporting") as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO ledger VALUES (1)")
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("DO $$BEGIN INSERT INTO ledger VALUES (2); END$$")
    assert rows_in_ledger(cluster) == 0

    with cluster.login("writer") as conn:
        conn.execute("INSERT INTO ledger VALUES (1)")
    assert rows_in_ledger(cluster) == 1

    refusals = run_line(log_grep, cluster).stdout
    assert '"role": "reporting"' in refusals
    assert '"kind": "INSERT"' in refusals
    assert '"role": "writer"' not in refusals
