"""The command that restarts the server install talked to, for the RESTART NEEDED line."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
from pathlib import Path, PurePosixPath

import psycopg

from pysafe.install.files import ServerPaths, pg_config_value


def debian_cluster(config_file: PurePosixPath) -> tuple[str, str] | None:
    """(version, name) of a postgresql-common cluster, from its configuration file's path."""
    parts = config_file.parts
    if len(parts) == 6 and parts[1:3] == ("etc", "postgresql") and parts[5] == "postgresql.conf":
        return parts[3], parts[4]
    return None


def data_directory_owner(data_directory: Path) -> str | None:
    try:
        return pwd.getpwuid(data_directory.stat().st_uid).pw_name
    except (OSError, KeyError):
        return None


def restart_command(conn: psycopg.Connection, paths: ServerPaths) -> str:
    """pg_ctlcluster for a Debian cluster, else pg_ctl restart on its data directory."""
    row = conn.execute(
        "SELECT current_setting('config_file'), current_setting('data_directory')"
    ).fetchone()
    assert row is not None
    cluster = debian_cluster(PurePosixPath(str(row[0])))
    if cluster is not None and shutil.which("pg_ctlcluster"):
        return f"pg_ctlcluster {cluster[0]} {cluster[1]} restart"
    data_directory = Path(str(row[1]))
    pg_ctl = Path(pg_config_value(paths.pg_config, "--bindir")) / "pg_ctl"
    command = shlex.join([str(pg_ctl), "restart", "-D", str(data_directory)])
    owner = data_directory_owner(data_directory)
    if os.geteuid() == 0 and owner is not None and owner != "root":
        return f"runuser -u {owner} -- {command}"
    return command
