"""python -m pysafe for fleets: per-server reports, --dsn-file, --json, bad input."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, Server, run_cli

UNREACHABLE = "host=127.0.0.1 port=1 user=postgres connect_timeout=2"


@pytest.fixture
def bare_database(server: Server) -> Iterator[str]:
    server.admin("CREATE DATABASE cli_bare TEMPLATE template0")
    yield "cli_bare"
    server.admin("DROP DATABASE cli_bare WITH (FORCE)")


def test_fleet_reports_each_server_and_fails_if_one_fails(server: Server) -> None:
    result = run_cli("status", "--dsn", server.cluster.dsn(), "--dsn", UNREACHABLE)
    assert result.returncode == 1
    assert f"status on 127.0.0.1:{server.cluster.port}/postgres:" in result.stdout
    assert "LIVE  mode" in result.stdout
    assert "status failed on 127.0.0.1:1/postgres: cannot connect" in result.stderr
    assert "pg_hba.conf" in result.stderr
    assert "1 of 2 servers succeeded" in result.stderr


def test_dsn_file_and_json(server: Server, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.txt"
    fleet.write_text(f"# two entries for one server\n{server.cluster.dsn()}\n\n{UNREACHABLE}\n")
    result = run_cli("status", "--dsn-file", str(fleet), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    first, second = report["servers"]
    assert first["ok"] is True
    assert report["format"] == 1 and report["drift"] == []
    assert {row["protection"] for row in first["result"]["protections"]} >= {"mode", "versions"}
    assert first["result"]["node"] == "primary"
    assert "reporting" in first["result"]["restricted_roles"]
    assert second["ok"] is False and "cannot connect" in second["error"]


def test_restrict_and_unrestrict_from_the_command_line(server: Server) -> None:
    server.admin("CREATE ROLE cli_user LOGIN IN ROLE can_write")
    try:
        result = run_cli("restrict", "cli_user", "--dsn", server.cluster.dsn())
        assert result.returncode == 0, result.stderr
        assert "cli_user is restricted in every database" in result.stdout
        server.assert_refused("cli_user", "INSERT INTO accounts VALUES (98, 1)")
        result = run_cli("unrestrict", "cli_user", "--dsn", server.cluster.dsn(), "--json")
        assert result.returncode == 0, result.stderr
        [entry] = json.loads(result.stdout)["servers"]
        assert (
            entry["result"]["message"]
            == "cli_user is no longer restricted, from its next statement"
        )
    finally:
        server.admin("DROP ROLE cli_user")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("restrict", "no_such_role"), 'role "no_such_role" does not exist'),
        (("unrestrict", "reporting"), "stays restricted through pysafe.roles"),
    ],
)
def test_admin_commands_name_the_problem(server: Server, args: tuple[str, ...], words: str) -> None:
    result = run_cli(*args, "--dsn", server.cluster.dsn())
    assert result.returncode == 1
    assert words in result.stderr and "hint:" in result.stderr


def test_non_superuser_is_refused_with_a_clear_message(server: Server) -> None:
    for args in (("restrict", "writer"), ("audit",)):
        result = run_cli(*args, "--dsn", server.cluster.dsn(user="writer"))
        assert result.returncode == 1
        assert "is for superusers" in result.stderr, result.stderr


def test_audit_lists_findings_with_fixes(server: Server, bare_database: str) -> None:
    result = run_cli("audit", "--dsn", server.cluster.dsn(), "--json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["servers"]
    findings = {(f["severity"], f["object"]) for f in entry["result"]}
    assert ("high", f"database {bare_database}") in findings
    assert ("high", "role reporting_with_power") in findings
    human = run_cli("audit", "--dsn", server.cluster.dsn())
    assert "HIGH   database cli_bare has no pysafe objects" in human.stdout
    assert "fix: python -m pysafe install" in human.stdout
    # Worst first, and the group restrict() grants is not reported as a role of its own.
    severities = [f["severity"] for f in entry["result"]]
    assert severities == sorted(severities, key=["high", "medium", "low", "info"].index)
    assert not [f for f in entry["result"] if f["object"] == "role pysafe_restricted"]
    failing = run_cli("audit", "--dsn", server.cluster.dsn(), "--fail-on", "high")
    assert failing.returncode == 1 and "audit found high findings or worse" in failing.stderr


def test_a_closed_pipe_ends_the_output_quietly() -> None:
    """check | head: no BrokenPipeError traceback."""
    sql = "SELECT 1;\n" * 20000
    done = subprocess.run(
        f"{sys.executable} -m pysafe check | head -1",
        shell=True,
        input=sql,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_status_where_pysafe_is_missing(server: Server, bare_database: str) -> None:
    result = run_cli("status", "--dsn", server.cluster.dsn(dbname=bare_database))
    assert result.returncode == 1
    assert "pysafe is not installed in this database" in result.stderr
    assert "python -m pysafe install" in result.stderr


def test_check_on_a_server(server: Server, tmp_path: Path) -> None:
    script = tmp_path / "report.sql"
    script.write_text("SELECT * FROM accounts; DELETE FROM accounts; SELECT nextval('ticket_seq')")
    result = run_cli("check", str(script), "--dsn", server.cluster.dsn(), "--json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["servers"]
    assert [row["verdict"] for row in entry["result"]] == ["allowed", "refused", "refused"]
    result = run_cli("check", str(script), "--dsn", server.cluster.dsn(), "--role", "writer")
    assert result.stdout.count("ALLOWED  [unrestricted]") == 3


def test_check_exit_status_is_the_same_online_and_offline(server: Server) -> None:
    """0 when all is allowed, 1 for refusals under --fail-on-refusal and for
    SQL that cannot be judged, 2 for usage errors; offline and online alike."""
    dsn = server.cluster.dsn()
    for where in ((), ("--dsn", dsn)):
        assert run_cli("check", *where, stdin="SELECT 1").returncode == 0
        refusing = run_cli("check", *where, "--fail-on-refusal", stdin="SELECT 1; DROP TABLE t")
        assert refusing.returncode == 1, (where, refusing.stderr)
        assert "REFUSED" in refusing.stdout
        assert run_cli("check", *where, stdin="SELECT 1; DROP TABLE t").returncode == 0
        unparsable = run_cli("check", *where, stdin="SELEC 1")
        assert unparsable.returncode == 1, (where, unparsable.stderr)
        assert run_cli("check", *where, "--no-such-option").returncode == 2


def test_check_online_judges_functions_and_offline_says_it_cannot(server: Server) -> None:
    sql = "SELECT py_volatile(); SELECT definer_insert()"
    online = run_cli("check", "--dsn", server.cluster.dsn(), "--json", stdin=sql)
    [entry] = json.loads(online.stdout)["servers"]
    assert [(r["verdict"], r["rule"]) for r in entry["result"]] == [
        ("refused", "untrusted_functions"),
        ("refused", "dml"),
    ]
    offline = run_cli("check", "--json", stdin=sql)
    rows = json.loads(offline.stdout)
    assert [r["verdict"] for r in rows] == ["allowed", "allowed"]
    assert all(r["detail"].startswith("offline:") and "--dsn" in r["detail"] for r in rows)
    assert "need a server (--dsn)" in run_cli("check", stdin=sql).stdout


def test_check_reads_standard_input_once_for_the_whole_fleet(server: Server) -> None:
    dsn = server.cluster.dsn()
    result = run_cli("check", "--dsn", dsn, "--dsn", dsn, "--json", stdin="DELETE FROM accounts")
    assert result.returncode == 0, result.stderr
    servers = json.loads(result.stdout)["servers"]
    assert [[row["verdict"] for row in entry["result"]] for entry in servers] == [
        ["refused"],
        ["refused"],
    ]


def test_check_offline_json_and_bad_input(tmp_path: Path) -> None:
    result = run_cli("check", "--json", stdin="SELECT 1; DROP TABLE t")
    assert result.returncode == 0
    assert [row["verdict"] for row in json.loads(result.stdout)] == ["allowed", "refused"]
    # Exit status: 1 for SQL that cannot be judged, as on a server; 2 for usage.
    result = run_cli("check", stdin="SELEC 1")
    assert result.returncode == 1 and "cannot parse" in result.stderr
    result = run_cli("check", str(tmp_path / "missing.sql"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_no_server_given() -> None:
    for args in (("status",), ("audit", "--dsn-file", "/nonexistent/fleet.txt")):
        result = run_cli(*args)
        assert result.returncode == 2
        assert "--dsn" in result.stderr


def test_the_runtime_package_imports_no_test_tooling() -> None:
    """demo and every command run from a plain pip install (issue 12): pglast
    and psycopg are the only third-party imports of the runtime package."""
    probe = (
        "import sys, pysafe.cli, pysafe.demo, pysafe.localcluster, pysafe.fleet, pysafe.status;"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded = set(ast.literal_eval(done.stdout))
    assert not loaded & {"pytest", "_pytest", "pytest_postgresql", "sqlalchemy", "mirakuru"}
    assert {"pglast", "psycopg"} <= loaded
