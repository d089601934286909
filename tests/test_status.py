"""pysafe.status() and python -m pysafe status in full mode."""

from __future__ import annotations

from tests.support import Server, run_cli

FULL_MODE_LIVE = [
    "mode",
    "configuration home",
    "read-only forcing at every statement",
    "DML refused at executor start",
    "side-effecting functions refused",
    "utility veto on every utility statement",
    "read-only settings protected on every path",
    "read-write requests kept read-only",
    "pysafe settings cluster-wide only",
    "checks in parallel workers",
    "replication connections refused",
    "sessions that become restricted are ended",
    "superuser-only and log-writing settings kept",
    "locks, programs, files and log volume bounded",
    "read-only defaults at login",
    "TRUNCATE and ALTER ROLE on itself refused",
]


def status_of(server: Server, user: str) -> dict[str, tuple[bool, str]]:
    with server.connect(user) as conn:
        return {
            p: (live, detail) for p, live, detail in conn.execute("SELECT * FROM pysafe.status()")
        }


def test_full_mode_status_for_a_restricted_session(server: Server) -> None:
    rows = status_of(server, "reporting")
    assert [name for name in FULL_MODE_LIVE if not rows[name][0]] == []
    assert rows["this session restricted"][0] is True
    # The event-trigger veto stands aside when the shim is loaded.
    assert rows["DDL veto by event trigger"][0] is False
    login_detail = rows["read-only defaults at login"][1]
    if server.cluster.major >= 17:
        assert login_detail == "pysafe_login event trigger (c)"
    else:
        assert login_detail.startswith("the shim, before the login's first statement")


def test_status_follows_the_settings(settings: Server) -> None:
    settings.set_settings(block_dml="off", force_read_only="off")
    rows = status_of(settings, "writer")
    assert rows["this session restricted"][0] is False
    assert rows["DML refused at executor start"][0] is False
    assert rows["read-only forcing at every statement"][0] is False
    assert rows["side-effecting functions refused"][0] is True


def test_status_cli(server: Server) -> None:
    result = run_cli("status", "--dsn", server.cluster.dsn(user="reporting"))
    assert result.returncode == 0, result.stderr
    assert "LIVE  this session restricted" in result.stdout
    assert "off   DDL veto by event trigger" in result.stdout
    bad = run_cli("status", "--dsn", "host=127.0.0.1 port=1 connect_timeout=2")
    assert bad.returncode != 0 and "status failed" in bad.stderr
