"""pgbench as each login on a database the superuser initialised (scale 1, generated
on the server).

The select-only script (-S) runs in the simple, extended and prepared
protocols; the default TPC-B-like script updates three tables and inserts
into a fourth, which the restricted login must not do.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.clients.common import BENCH_DB, PYSAFE_WORDING, Login, client_dsn
from tests.support import FINGERPRINT_FUNCTION, Server

TABLES = "pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"


@pytest.fixture(scope="module")
def bench_db(server: Server, clientdb: str) -> Iterator[str]:
    server.admin(f"CREATE DATABASE {BENCH_DB}")
    try:
        init = pgbench(server, "postgres", "-i", "-s", "1", "-I", "dtGp")
        assert init.returncode == 0, init.stderr
        server.admin(f"GRANT ALL ON {TABLES} TO client_group", BENCH_DB)
        server.admin(FINGERPRINT_FUNCTION, BENCH_DB)
        yield BENCH_DB
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def pgbench(server: Server, login: Login | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(server.cluster.bindir / "pgbench"), *args, client_dsn(server, login, BENCH_DB)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("protocol", ["simple", "extended", "prepared"])
def test_select_only(server: Server, bench_db: str, login: Login, protocol: str) -> None:
    before = server.fingerprint(bench_db)
    result = pgbench(server, login, "-n", "-S", "-M", protocol, "-c", "2", "-t", "50")
    assert result.returncode == 0, result.stderr
    assert "number of transactions actually processed: 100/100" in result.stdout
    assert "number of failed transactions: 0" in result.stdout
    assert server.fingerprint(bench_db) == before


def test_select_only_with_its_vacuum(server: Server, bench_db: str, login: Login) -> None:
    """Without -n pgbench first vacuums its tables: refused for the restricted login
    (pgbench carries on), and the benchmark itself runs."""
    before = server.fingerprint(bench_db)
    result = pgbench(server, login, "-S", "-t", "20")
    assert result.returncode == 0, result.stderr
    assert "number of transactions actually processed: 20/20" in result.stdout
    if login.restricted:
        # VACUUM of two tables, TRUNCATE of the history: each refused, pgbench goes on.
        assert result.stderr.count(f"VACUUM/ANALYZE {PYSAFE_WORDING}") == 2, result.stderr
        assert result.stderr.count(f"TRUNCATE TABLE {PYSAFE_WORDING}") == 1, result.stderr
        assert server.fingerprint(bench_db) == before
    else:
        assert "read-only" not in result.stderr


def test_tpcb_writes(server: Server, bench_db: str, login: Login) -> None:
    before = server.fingerprint(bench_db)
    history = server.admin("SELECT count(*) FROM pgbench_history", bench_db)[0][0]
    assert isinstance(history, int)
    result = pgbench(server, login, "-n", "-t", "10")
    after = server.admin("SELECT count(*) FROM pgbench_history", bench_db)[0][0]
    if login.restricted:
        assert result.returncode != 0
        assert f"cannot execute UPDATE {PYSAFE_WORDING}" in result.stderr, result.stderr
        assert after == history
        assert server.fingerprint(bench_db) == before
    else:
        assert result.returncode == 0, result.stderr
        assert "number of transactions actually processed: 10/10" in result.stdout
        assert after == history + 10
