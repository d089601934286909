"""The side-by-side clusters every benchmark compares: bare, and with pysafe."""

from __future__ import annotations

import re

from pysafe.install import install
from pysafe.localcluster import LocalCluster

TPS = re.compile(r"tps = ([\d.]+)")

RESTRICTED_ROLE = "reporting"
UNRESTRICTED_ROLE = "app_user"


def prepare(cluster: LocalCluster, with_pysafe: bool) -> None:
    """Roles on both; pysafe installed, loaded and restricting "reporting" on one."""
    if with_pysafe:
        install(cluster.dsn(), cluster.pg_config)
        cluster.restart()
    with cluster.connect() as conn:
        conn.execute(f"CREATE ROLE {UNRESTRICTED_ROLE} LOGIN")
        conn.execute(f"CREATE ROLE {RESTRICTED_ROLE} LOGIN")
        if with_pysafe:
            conn.execute(f"ALTER SYSTEM SET pysafe.roles = '{RESTRICTED_ROLE}'")
            conn.execute("SELECT pg_reload_conf()")


def connection_options(cluster: LocalCluster, role: str) -> list[str]:
    """A client program's options to reach ``cluster`` as ``role`` over TCP."""
    return ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", role]


def pgbench_tps(
    cluster: LocalCluster, role: str, script: str, seconds: int, *options: str
) -> float:
    """Transactions per second of one pgbench run of ``script`` as ``role``."""
    result = cluster.run_as_service_user(
        str(cluster.bindir / "pgbench"),
        "-n",
        *options,
        "-T",
        str(seconds),
        "-f",
        script,
        *connection_options(cluster, role),
        "postgres",
    )
    match = TPS.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))
