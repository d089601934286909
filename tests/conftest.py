"""Fixtures: one real PostgreSQL cluster with pysafe installed, shared by the session.

The cluster comes from local binaries (pysafe.localcluster, built on
initdb and pg_ctl); pysafe is put on it with the real installer and
the cluster restarted so the shim is preloaded.  pg_stat_statements is
preloaded first, as on most production servers, so the extension review's
tests can call it and install shows it keeps other libraries.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pysafe.install import install
from pysafe.localcluster import LocalCluster
from tests.support import RESTRICTED_ROLES_SETTING, Server, create_fixture_objects


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    cluster = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        with cluster.connect() as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        install(cluster.dsn(), cluster.pg_config)
        cluster.restart()
        server = Server(cluster)
        create_fixture_objects(server)
        server.set_settings(roles=RESTRICTED_ROLES_SETTING)
        yield server
    finally:
        cluster.stop()


@pytest.fixture
def settings(server: Server) -> Iterator[Server]:
    """Lets a test change pysafe.* settings; they are back to defaults afterwards."""
    yield server
    server.reset_settings()
