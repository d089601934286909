"""Throwaway PostgreSQL clusters from local binaries, for the demo, tests and benchmarks.

Built on pytest-postgresql's executor (initdb and pg_ctl under the hood).
PostgreSQL refuses to run as root, so when we are root every pg_ctl call goes
through a small wrapper that runs it as the ``postgres`` OS user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo
from pytest_postgresql.executors import PostgreSQLExecutor

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


def pg_ctl_for_this_user(bindir: Path, workdir: Path) -> Path:
    """pg_ctl itself, or as root a wrapper that runs it as the postgres OS user."""
    pg_ctl = bindir / "pg_ctl"
    if os.geteuid() != 0:
        return pg_ctl
    wrapper = workdir / "pg_ctl"
    wrapper.write_text(f'#!/bin/sh\nexec runuser -u {SERVICE_USER} -- "{pg_ctl}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@dataclass
class LocalCluster:
    """One cluster in a private folder, listening on a loopback port."""

    bindir: Path = DEFAULT_BINDIR
    settings: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(init=False)
    port: int = field(init=False)
    executor: PostgreSQLExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="pysafe-cluster-"))
        self.workdir.chmod(0o755)
        hand_to_service_user(self.workdir)
        self.port = free_port()
        options = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        self.executor = PostgreSQLExecutor(
            executable=str(pg_ctl_for_this_user(self.bindir, self.workdir)),
            host="127.0.0.1",
            port=self.port,
            datadir=str(self.workdir / "data"),
            unixsocketdir=str(self.workdir),
            logfile=str(self.workdir / "server.log"),
            startparams="-w",
            dbname="postgres",
            postgres_options=options,
        )

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

    def start(self) -> LocalCluster:
        self.executor.start()
        return self

    def restart(self) -> None:
        self.executor.stop()
        self.executor.start()

    def reload(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")

    def stop(self) -> None:
        try:
            self.executor.stop()
        finally:
            self.executor.clean_directory()
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
