"""Throwaway PostgreSQL clusters from local binaries, for the demo, tests and benchmarks.

initdb and pg_ctl, nothing else: the demo runs from a plain ``pip install``.
PostgreSQL refuses to run as root, so when we are root every server binary
runs as the ``postgres`` OS user.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

SERVICE_USER = "postgres"
DEFAULT_BINDIR = Path(os.environ.get("PYSAFE_PG_BINDIR", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_service_user(command: list[str]) -> list[str]:
    """The command, run as the postgres OS user when we are root."""
    return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command


def hand_to_service_user(*paths: Path) -> None:
    """When root: give paths to the postgres OS user, so what runs as it can write there."""
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(SERVICE_USER)
    for path in paths:
        os.chown(path, account.pw_uid, account.pw_gid)


# How long pg_ctl waits for the server to start or stop.
PG_CTL_WAIT_SECONDS = "120"


class ClusterError(RuntimeError):
    """A server binary failed; the message carries its output."""


@dataclass
class LocalCluster:
    """One cluster in a private folder, listening on a loopback port.

    The data directory is made by initdb at the first start, unless one is
    already there (a base backup, for a standby).  fsync is off: these
    clusters are thrown away.
    """

    bindir: Path = DEFAULT_BINDIR
    settings: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="pysafe-cluster-"))
        self.workdir.chmod(0o755)
        hand_to_service_user(self.workdir)
        self.port = free_port()

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def pg_config(self) -> Path:
        return self.bindir / "pg_config"

    @property
    def major(self) -> int:
        """The major version of these binaries."""
        result = subprocess.run(
            [str(self.bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(result.stdout.split()[2].split(".")[0])

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def run_binary(self, name: str, *args: str) -> None:
        """A server binary as the service user; ClusterError with its output on failure."""
        result = self.run_as_service_user(str(self.bindir / name), *args)
        if result.returncode != 0:
            raise ClusterError(f"{name} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> LocalCluster:
        """Start the server (initdb first if there is no data directory) and wait for it."""
        if not (self.datadir / "PG_VERSION").exists():
            self.run_binary(
                "initdb", "--pgdata", str(self.datadir), "--username", SERVICE_USER, "--auth=trust"
            )
        options = [
            "-F",
            f"-p {self.port}",
            "-c log_destination=stderr",
            "-c logging_collector=off",
            f"-c unix_socket_directories={shlex.quote(str(self.workdir))}",
            *(f"-c {shlex.quote(f'{name}={value}')}" for name, value in self.settings.items()),
        ]
        self.run_binary(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            PG_CTL_WAIT_SECONDS,
            "-D",
            str(self.datadir),
            "-l",
            str(self.log_path),
            "-o",
            " ".join(options),
        )
        return self

    def stop_server(self) -> None:
        """Stop the server (fast shutdown) and wait; the data directory stays."""
        if (self.datadir / "postmaster.pid").exists():
            self.run_binary(
                "pg_ctl",
                "stop",
                "-w",
                "-t",
                PG_CTL_WAIT_SECONDS,
                "-m",
                "fast",
                "-D",
                str(self.datadir),
            )

    def restart(self) -> None:
        self.stop_server()
        self.start()

    def reload(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")

    def stop(self) -> None:
        """Stop the server and remove everything it had."""
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def dsn(self, user: str = SERVICE_USER, dbname: str = "postgres", **extra: str) -> str:
        return make_conninfo(
            host="127.0.0.1", port=str(self.port), user=user, dbname=dbname, **extra
        )

    def connect(
        self, user: str = SERVICE_USER, dbname: str = "postgres", autocommit: bool = True
    ) -> psycopg.Connection:
        return psycopg.connect(self.dsn(user, dbname), autocommit=autocommit)

    def run_as_service_user(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run a server binary (pgbench, psql) as the user the cluster runs as."""
        return subprocess.run(
            as_service_user(list(command)), capture_output=True, text=True, check=False, cwd="/"
        )
