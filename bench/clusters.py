"""The side-by-side clusters every benchmark compares: bare, and with pysafe."""

from __future__ import annotations

from pysafe.install import install
from pysafe.localcluster import LocalCluster

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
