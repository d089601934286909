"""Through a real pgbouncer: pool resets succeed and every protection holds after them.

pgbouncer (Debian package) is started by the tests on a loopback port, as
the postgres OS user, in session and in transaction pooling mode, with
DISCARD ALL as its reset query.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pysafe.localcluster import as_service_user, free_port, hand_to_service_user
from tests.support import Server, assert_each_refused, attempt_on

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
pytestmark = pytest.mark.skipif(not Path(PGBOUNCER).exists(), reason="needs pgbouncer")

USERS = ("reporting", "writer", "postgres")


def write_config(folder: Path, server: Server, port: int, mode: str) -> Path:
    (folder / "users.txt").write_text("".join(f'"{user}" ""\n' for user in USERS))
    config = folder / "pgbouncer.ini"
    config.write_text(
        f"""[databases]
postgres = host=127.0.0.1 port={server.cluster.port} dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = {mode}
server_reset_query = DISCARD ALL
server_reset_query_always = 1
default_pool_size = 1
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""
    )
    return config


@pytest.fixture(params=["session", "transaction"])
def pooler(request: pytest.FixtureRequest, server: Server) -> Iterator[str]:
    """A running pgbouncer; yields a DSN template with {user}."""
    folder = server.cluster.workdir / f"pgbouncer-{request.param}"
    folder.mkdir(exist_ok=True)
    port = free_port()
    config = write_config(folder, server, port, request.param)
    # pgbouncer refuses to run as root: it runs as the postgres OS user.
    hand_to_service_user(folder, *folder.iterdir())
    process = subprocess.Popen(
        as_service_user([PGBOUNCER, str(config)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    dsn = f"host=127.0.0.1 port={port} dbname=postgres user={{user}}"
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(dsn.format(user="postgres"), connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
                pytest.fail(f"pgbouncer did not start: {errors}")
            time.sleep(0.2)
    yield dsn
    process.terminate()
    process.wait(timeout=10)


def through(pooler: str, user: str) -> psycopg.Connection:
    # pgbouncer 1.18 has no protocol-level prepared statements in transaction mode.
    return psycopg.connect(pooler.format(user=user), autocommit=True, prepare_threshold=None)


def test_pool_resets_succeed_and_protections_hold(pooler: str, server: Server) -> None:
    before = server.fingerprint()
    with through(pooler, "reporting") as conn:
        assert attempt_on(conn, "DISCARD ALL") is None
        assert attempt_on(conn, "RESET ALL") is None
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        writes = (
            "INSERT INTO accounts VALUES (300, 1)",
            "CREATE TABLE pooled (x int)",
            "SELECT nextval('ticket_seq')",
            "SELECT c_volatile()",
        )
        assert_each_refused(conn, writes)
        # A read-write request is ignored: the setting stays on.
        assert attempt_on(conn, "SET default_transaction_read_only = off") is None
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() is not None
    assert server.fingerprint() == before


def test_a_reused_server_connection_stays_restricted(pooler: str, server: Server) -> None:
    """pgbouncer ran DISCARD ALL on the server connection between the clients."""
    before = server.fingerprint()
    pids = set()
    for _ in range(3):
        with through(pooler, "reporting") as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            pids.add(row[0])
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            refusal = attempt_on(conn, "INSERT INTO accounts VALUES (301, 1)")
            assert refusal is not None and refusal.sqlstate == "25006"
    assert len(pids) == 1, "the pool should have reused one server connection"
    assert server.fingerprint() == before


def test_unrestricted_clients_through_the_pool_are_untouched(pooler: str) -> None:
    with through(pooler, "writer") as conn:
        assert attempt_on(conn, "DISCARD ALL") is None
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
        conn.autocommit = False
        assert attempt_on(conn, "INSERT INTO accounts VALUES (302, 1)") is None
        conn.rollback()
