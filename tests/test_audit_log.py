"""The audit trail: one structured server-log line per refusal (pysafe.log_refusals)."""

from __future__ import annotations

import json
import time
import uuid

from tests.support import Server

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
