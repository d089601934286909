"""vacuumdb and reindexdb as each login, on a table the logins' group owns.

They write (statistics, visibility and freeze state, index files): refused
for the restricted login, done for the others.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.clients.common import CLIENT_DB, PYSAFE_WORDING, Login, client_dsn
from tests.support import Server

TOOLS = {
    "vacuumdb": (["vacuumdb", "--table", "public.scratch"], "VACUUM/ANALYZE"),
    "analyze": (["vacuumdb", "--analyze-only", "--table", "public.scratch"], "VACUUM/ANALYZE"),
    "reindexdb": (["reindexdb", "--table", "public.scratch"], "REINDEX"),
}


@pytest.mark.parametrize("tool", TOOLS)
def test_maintenance_tools(server: Server, login: Login, tool: str) -> None:
    command, refused = TOOLS[tool]
    before = server.fingerprint(CLIENT_DB)
    result = subprocess.run(
        [str(server.cluster.bindir / command[0]), *command[1:], "-d", client_dsn(server, login)],
        capture_output=True,
        text=True,
        check=False,
    )
    if login.restricted:
        assert result.returncode != 0
        assert f"cannot execute {refused} {PYSAFE_WORDING}" in result.stderr, result.stderr
        assert server.fingerprint(CLIENT_DB) == before
    else:
        assert result.returncode == 0, result.stderr
