"""The audit trail: one structured server-log line per refusal (pysafe.log_refusals).

The line's message is "pysafe refusal: " and a JSON object, whatever
log_destination is: in jsonlog and csvlog it is the message field, a string,
and the recipe docs/operations.md gives for jsonlog is run here as written
(test_side_channels.py runs it after forged lines too).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysafe.install import install
from pysafe.localcluster import LocalCluster
from tests.support import REPO, RESTRICTED_ROLES_SETTING, Server, create_fixture_objects

PREFIX = "pysafe refusal: "


def refusal_lines(server: Server, marker: str) -> list[dict[str, str]]:
    """The refusal records whose statement carries ``marker``."""
    deadline = time.monotonic() + 5
    while True:
        records = []
        for line in server.cluster.log_path.read_text(errors="replace").splitlines():
            if PREFIX in line:
                record = json.loads(line.split(PREFIX, 1)[1])
                if marker in record["statement"]:
                    records.append(record)
        if records or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def unique() -> str:
    return uuid.uuid4().hex[:12]


def test_each_refusal_writes_one_line_naming_role_database_kind_and_rule(server: Server) -> None:
    cases = [
        ("INSERT INTO accounts VALUES (93, 1) /* {m} */", "INSERT", "dml"),
        ("CREATE TABLE audit_probe (x int) /* {m} */", "CREATE TABLE", "utility"),
        ("SELECT lo_create(0) /* {m} */", "FUNCTION lo_create", "builtin_functions"),
        ("SELECT c_volatile() /* {m} */", "FUNCTION c_volatile", "c_functions"),
        ("SET pysafe.block_dml = off /* {m} */", "SET", "pysafe_settings"),
    ]
    for template, kind, rule in cases:
        marker = unique()
        server.assert_refused("reporting", template.format(m=marker))
        records = refusal_lines(server, marker)
        assert len(records) == 1, (template, records)
        record = records[0]
        assert record["role"] == "reporting" and record["database"] == "postgres"
        assert (record["kind"], record["rule"]) == (kind, rule), record
        assert record["message"].startswith("cannot "), record


def test_statement_text_is_cut_to_the_configured_length(settings: Server) -> None:
    settings.set_settings(log_statement_length="40")
    marker = unique()
    statement = f"INSERT INTO accounts /* {marker} ééé */ VALUES (94, 1)"
    settings.assert_refused("reporting", statement)
    [record] = refusal_lines(settings, marker)
    assert len(record["statement"].encode()) <= 40
    assert statement.startswith(record["statement"])


def test_no_line_when_switched_off_or_unrestricted(settings: Server) -> None:
    marker = unique()
    with settings.connect("writer") as conn:
        conn.execute(f"UPDATE accounts SET balance = balance /* {marker} */ WHERE false")
    settings.set_settings(log_refusals="off")
    settings.assert_refused("reporting", f"INSERT INTO accounts VALUES (95, 1) /* {marker} */")
    # Something else is logged after both, so the log has caught up.
    settings.set_settings(log_refusals="on")
    later = unique()
    settings.assert_refused("reporting", f"INSERT INTO accounts VALUES (96, 1) /* {later} */")
    assert refusal_lines(settings, later)
    assert refusal_lines(settings, marker) == []


# docs/operations.md, "Collecting refusals": the jsonlog recipe, word for word.
JQ_RECIPE = (
    'fromjson? | select(.error_severity == "LOG" and (.message | type) == "string"'
    ' and (.message | startswith("pysafe refusal: ")))'
    ' | {timestamp} + (.message | ltrimstr("pysafe refusal: ") | fromjson?)'
)
OPERATIONS_DOC = REPO / "docs" / "operations.md"
CSVLOG_MESSAGE_COLUMN = 13  # 0-based; the csvlog columns of PostgreSQL 13 and later


@pytest.fixture(scope="module")
def structured_logs() -> Iterator[Server]:
    """A cluster of its own that logs to jsonlog and csvlog (logging_collector
    needs a restart, so the shared cluster cannot be switched)."""
    cluster = LocalCluster(
        settings={
            "autovacuum": "off",
            "logging_collector": "on",
            "log_destination": "jsonlog,csvlog",
        }
    )
    if cluster.major < 15:
        pytest.skip("jsonlog came with PostgreSQL 15")
    cluster.start()
    try:
        install(cluster.dsn(), cluster.pg_config)
        cluster.restart()
        server = Server(cluster)
        create_fixture_objects(server)
        server.set_settings(roles=RESTRICTED_ROLES_SETTING)
        yield server
    finally:
        cluster.stop()


def log_files(server: Server, suffix: str) -> list[Path]:
    return sorted((server.cluster.datadir / "log").glob(f"*.{suffix}"))


def wait_for_text(server: Server, suffix: str, marker: str) -> list[Path]:
    """The log files of that kind, once one of them holds ``marker``."""
    deadline = time.monotonic() + 10
    while True:
        files = log_files(server, suffix)
        if any(marker in path.read_text(errors="replace") for path in files):
            return files
        assert time.monotonic() < deadline, f"{marker} not in any *.{suffix} log"
        time.sleep(0.1)


def test_jsonlog_message_is_the_prefix_and_the_object(structured_logs: Server) -> None:
    marker = unique()
    statement = f"INSERT INTO accounts VALUES (97, 1) /* {marker} */"
    structured_logs.assert_refused("reporting", statement)
    records = []
    for path in wait_for_text(structured_logs, "json", marker):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            message = entry.get("message", "")
            if message.startswith(PREFIX) and marker in message:
                records.append((entry, json.loads(message.removeprefix(PREFIX))))
    [(entry, record)] = records
    assert entry["error_severity"] == "LOG" and entry["user"] == "reporting"
    assert "statement" not in entry and "context" not in entry
    assert record == {
        "role": "reporting",
        "current_role": "reporting",
        "database": "postgres",
        "kind": "INSERT",
        "rule": "dml",
        "message": "cannot execute INSERT in a read-only session",
        "statement": statement,
    }


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq (.ci/setup installs it)")
def test_the_documented_jq_recipe_extracts_each_refusal(structured_logs: Server) -> None:
    marker = unique()
    assert f"jq -R -c '{JQ_RECIPE}' \"$PGDATA\"/log/*.json" in OPERATIONS_DOC.read_text()
    structured_logs.assert_refused("reporting", f"CREATE TABLE jq_probe (x int) /* {marker} */")
    files = wait_for_text(structured_logs, "json", marker)
    done = subprocess.run(
        ["jq", "-R", "-c", JQ_RECIPE, *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
    )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    [record] = [r for r in records if marker in r["statement"]]
    assert (record["role"], record["kind"], record["rule"]) == (
        "reporting",
        "CREATE TABLE",
        "utility",
    )
    assert record["timestamp"] and record["database"] == "postgres"
    # Every line the recipe gives is a refusal object, nothing else.
    assert all(set(r) >= {"timestamp", "role", "rule", "statement"} for r in records)


def test_csvlog_message_column_is_the_prefix_and_the_object(structured_logs: Server) -> None:
    marker = unique()
    structured_logs.assert_refused("reporting", f"SELECT lo_create(0) /* {marker} */")
    messages = []
    for path in wait_for_text(structured_logs, "csv", marker):
        with path.open(newline="") as stream:
            messages += [row[CSVLOG_MESSAGE_COLUMN] for row in csv.reader(stream)]
    [record] = [
        json.loads(m.removeprefix(PREFIX)) for m in messages if m.startswith(PREFIX) and marker in m
    ]
    assert (record["kind"], record["rule"]) == ("FUNCTION lo_create", "builtin_functions")
