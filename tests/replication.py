"""Streaming standbys of a test cluster, made as DBAs make them: pg_basebackup -R."""

from __future__ import annotations

import time

import psycopg

from pysafe.localcluster import LocalCluster, hand_to_service_user


def make_standby(primary: LocalCluster) -> LocalCluster:
    """A hot standby of ``primary``, streaming from it, started and accepting reads."""
    standby = LocalCluster(bindir=primary.bindir, settings=dict(primary.settings))
    datadir = standby.datadir
    result = primary.run_as_service_user(
        str(primary.bindir / "pg_basebackup"),
        "-D",
        str(datadir),
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
        "-h",
        "127.0.0.1",
        "-p",
        str(primary.port),
        "-U",
        "postgres",
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_basebackup failed:\n{result.stderr}")
    hand_to_service_user(datadir)
    standby.start()  # the backup is the data directory: no initdb
    wait_until(standby, "SELECT pg_is_in_recovery()", True)
    return standby


def wait_until(cluster: LocalCluster, query: str, expected: object, seconds: float = 30) -> None:
    """Poll ``query`` on ``cluster`` until its one value is ``expected``."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            with cluster.connect() as conn:
                row = conn.execute(query).fetchone()
                last = row[0] if row else None
        except psycopg.OperationalError as error:  # starting up
            last = error
        if last == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{query} gave {last!r}, not {expected!r}, for {seconds} s")


def wait_for_replay(primary: LocalCluster, standby: LocalCluster) -> None:
    """Until the standby has replayed everything the primary wrote so far."""
    with primary.connect() as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target = str(row[0])
    wait_until(standby, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn", True)


def promote(standby: LocalCluster) -> None:
    with standby.connect() as conn:
        conn.execute("SELECT pg_promote(true, 60)")
    wait_until(standby, "SELECT pg_is_in_recovery()", False)
