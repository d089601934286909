"""The Python policy on its own: no server needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pysafe.policy import OfflineFacts, PolicySettings, decide_statement, decide_text
from pysafe.policy.utility import parse_bool
from tests.support import run_cli

DEFAULT = PolicySettings()


def server_decision(text: str, tag: str, settings: PolicySettings = DEFAULT) -> str | None:
    return decide_statement(text, tag, settings, OfflineFacts()).as_server_reply()


def test_unparsable_text_is_refused() -> None:
    reply = server_decision("LISTEN LISTEN LISTEN (", "LISTEN")
    assert reply is not None
    assert reply.startswith("unparsable\ncannot execute LISTEN in a read-only session")
    assert "could not parse" in reply


def test_text_with_several_statements_is_refused() -> None:
    reply = server_decision("LISTEN a; CREATE TABLE t (x int)", "LISTEN")
    assert reply is not None and "found 2 statements" in reply


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("LISTEN a", "CREATE TABLE"),  # pglast and the server read different statements
        ("SET work_mem = 1", "RESET"),
        ("FETCH 1 FROM c", "MOVE"),
        ("DISCARD ALL", "DISCARD PLANS"),
    ],
)
def test_disagreement_with_the_server_parse_is_refused(text: str, tag: str) -> None:
    reply = server_decision(text, tag)
    assert reply is not None and "where the server parsed" in reply


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("LISTEN a", "LISTEN"),
        ("SET work_mem = 1", "SET"),
        ("RESET ALL", "RESET"),
        ("FETCH 1 FROM c", "FETCH"),
        ("CLOSE ALL", "CLOSE CURSOR ALL"),
        ("DISCARD ALL", "DISCARD ALL"),
        ("DEALLOCATE ALL", "DEALLOCATE ALL"),
        ("BEGIN READ ONLY", "BEGIN"),
        ("ROLLBACK TO SAVEPOINT a", "ROLLBACK"),
        ("COPY t TO STDOUT", "COPY"),
        ("LOCK t IN ACCESS SHARE MODE", "LOCK TABLE"),
        ("CALL p()", "CALL"),
        ("EXPLAIN SELECT 1", "EXPLAIN"),
        ("DO $$BEGIN END$$", "DO"),
    ],
)
def test_agreeing_allowed_statements_pass(text: str, tag: str) -> None:
    assert server_decision(text, tag) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("on", True),
        ("ON", True),
        ("t", True),
        ("tru", True),
        ("yes", True),
        ("1", True),
        ("off", False),
        ("of", False),
        ("f", False),
        ("no", False),
        ("0", False),
        ("o", None),
        ("2", None),
        ("", None),
        ("maybe", None),
    ],
)
def test_parse_bool_follows_postgresql(value: str, expected: bool | None) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize(
    "text",
    [
        "SET default_transaction_read_only = 'o'",
        "SET transaction_read_only = on, off",
        "SET default_transaction_read_only = 2",
    ],
)
def test_unclear_read_only_values_are_refused(text: str) -> None:
    refusing = PolicySettings(ignore_read_write_requests=False)
    assert not decide_text(text, refusing)[0].verdict.allowed


READ_WRITE_REQUESTS = [
    "BEGIN READ WRITE",
    "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
    "SET TRANSACTION READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SET LOCAL transaction_read_only = false",
]


@pytest.mark.parametrize("text", READ_WRITE_REQUESTS)
def test_read_write_requests_follow_the_setting(text: str) -> None:
    """ignore (the default): allowed, the shim's check hooks keep read-only on;
    refuse, or no read-only forcing to keep it on: refused."""
    [result] = decide_text(text)
    assert result.verdict.allowed and result.verdict.rule == "read_write_ignored"
    for settings in (
        PolicySettings(ignore_read_write_requests=False),
        PolicySettings(force_read_only=False),
    ):
        [result] = decide_text(text, settings)
        assert not result.verdict.allowed and result.verdict.rule == "read_only_settings"


@pytest.mark.parametrize(
    "text",
    ["RESET default_transaction_read_only", "SET transaction_read_only TO DEFAULT"],
)
def test_resets_of_read_only_settings_follow_the_setting(text: str) -> None:
    """Resets pass no check hook; the shim sets the value on again right after."""
    assert decide_text(text)[0].verdict.allowed
    refusing = PolicySettings(ignore_read_write_requests=False)
    assert not decide_text(text, refusing)[0].verdict.allowed


def test_block_ddl_off_allows_ddl_but_not_tampering() -> None:
    settings = PolicySettings(block_ddl=False, ignore_read_write_requests=False)
    assert decide_text("CREATE TABLE t (x int)", settings)[0].verdict.allowed
    assert not decide_text("SET TRANSACTION READ WRITE", settings)[0].verdict.allowed
    assert not decide_text("COPY t FROM STDIN", settings)[0].verdict.allowed


def test_forcing_refuses_writes_postgresql_runs_read_only() -> None:
    """VACUUM and its kin pass a read-only transaction; force_read_only refuses them alone."""
    forcing_only = PolicySettings(block_dml=False, block_ddl=False, block_c_functions=False)
    neither = PolicySettings(block_ddl=False, force_read_only=False)
    for text in (
        "VACUUM",
        "ANALYZE t",
        "CLUSTER t",
        "REINDEX TABLE t",
        "CHECKPOINT",
        "ALTER SYSTEM SET work_mem = 1",
        "LOAD 'x'",
        "COPY t TO '/tmp/x'",
        "COPY t TO PROGRAM 'cat'",
        "PREPARE TRANSACTION 'x'",
        "ROLLBACK PREPARED 'x'",
    ):
        assert not decide_text(text, forcing_only)[0].verdict.allowed, text
        # Server files and programs stay refused whatever the settings.
        writes_server_files = text.startswith(("COPY", "ALTER SYSTEM"))
        assert decide_text(text, neither)[0].verdict.allowed != writes_server_files, text
    # A lock only a writer needs: forcing refuses it as block_ddl does.
    assert not decide_text("LOCK t", forcing_only)[0].verdict.allowed
    assert decide_text("LOCK t IN ROW SHARE MODE", forcing_only)[0].verdict.allowed
    assert decide_text("LOCK t", neither)[0].verdict.allowed


def test_programs_and_server_files_refused_whatever_the_settings() -> None:
    """COPY to or from a program, COPY TO a file and ALTER SYSTEM: under every
    combination of settings.  COPY FROM a file only reads; block_dml decides it."""
    for flags in range(512):
        settings = PolicySettings.from_flags(flags)
        for text in (
            "COPY t FROM PROGRAM 'id'",
            "COPY t TO PROGRAM 'cat'",
            "COPY (SELECT 1) TO PROGRAM 'cat'",
            "COPY t TO '/tmp/x'",
            "ALTER SYSTEM SET work_mem = 1",
        ):
            assert not decide_text(text, settings)[0].verdict.allowed, (text, settings)
        from_file = decide_text("COPY t FROM '/tmp/x'", settings)[0].verdict
        reads_allowed = not settings.block_dml and not settings.force_read_only
        assert from_file.allowed == reads_allowed, settings
    assert decide_text("COPY t FROM PROGRAM 'id'")[0].verdict.rule == "copy_from_program"


def test_writes_refused_by_effect_in_explain_and_temporary_tables() -> None:
    """Plain EXPLAIN of a refused write is refused (parse analysis takes its
    locks); so is a temporary table's foreign key to a table not known temporary."""
    forcing_only = PolicySettings(block_dml=False, block_ddl=False)
    for settings in (PolicySettings(), forcing_only):
        for text, rule in (
            ("EXPLAIN UPDATE t SET a = 1", "dml"),
            ("EXPLAIN (ANALYZE off) DELETE FROM t", "dml"),
            ("EXPLAIN WITH w AS (DELETE FROM t RETURNING *) SELECT * FROM w", "modifying_cte"),
            ("UPDATE t SET a = 1", "dml"),
        ):
            verdict = decide_text(text, settings)[0].verdict
            assert (verdict.allowed, verdict.rule) == (False, rule), (text, settings)
    writes_allowed = PolicySettings(block_dml=False, force_read_only=False)
    assert decide_text("EXPLAIN UPDATE t SET a = 1", writes_allowed)[0].verdict.allowed
    allowing = PolicySettings(allow_temp_objects=True)
    for text in (
        "CREATE TEMP TABLE c (x int REFERENCES app.secret (id))",
        "CREATE TEMP TABLE c (x int, FOREIGN KEY (x) REFERENCES secret)",
    ):
        verdict = decide_text(text, allowing)[0].verdict
        assert (verdict.allowed, verdict.rule) == (False, "lock"), text


def test_temporary_tables_follow_allow_temp_objects() -> None:
    allowing = PolicySettings(allow_temp_objects=True)
    for text in (
        "CREATE TEMP TABLE t (a int)",
        "CREATE TABLE pg_temp.t (a int)",
        "CREATE TEMP TABLE t AS SELECT 1",
        "SELECT 1 INTO TEMP t",
    ):
        assert not decide_text(text)[0].verdict.allowed, text
        verdict = decide_text(text, allowing)[0].verdict
        assert verdict.allowed and verdict.as_server_reply() == "+temporary", text
    # Offline, no name is known to be temporary.
    for text in ("DROP TABLE t", "TRUNCATE t", "COPY t FROM STDIN", "INSERT INTO t VALUES (1)"):
        assert not decide_text(text, allowing)[0].verdict.allowed, text
    for text in (
        "CREATE TABLE t (a int)",
        "CREATE UNLOGGED TABLE t (a int)",
        "CREATE TEMP TABLE t () INHERITS (p)",
        "CREATE TEMP VIEW v AS SELECT 1",
    ):
        assert not decide_text(text, allowing)[0].verdict.allowed, text


def test_untrusted_do_follows_block_c_functions() -> None:
    text = "DO LANGUAGE plpython3u $$pass$$"
    assert not decide_text(text)[0].verdict.allowed
    assert decide_text(text, PolicySettings(block_c_functions=False))[0].verdict.allowed


def test_flags_round_trip() -> None:
    for flags in range(256):
        assert PolicySettings.from_flags(flags).to_flags() == flags


def run_check(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_cli("check", *args, stdin=stdin)


def test_offline_check_cli(tmp_path: Path) -> None:
    script = tmp_path / "report.sql"
    script.write_text("SELECT 1;\nINSERT INTO t VALUES (1);\nSET work_mem = '1MB';\n")
    result = run_check(str(script))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ALLOWED  [select] SELECT 1")
    assert lines[1].startswith("REFUSED  [dml] INSERT INTO t VALUES (1)")
    assert "cannot execute INSERT in a read-only session" in lines[2]
    assert run_check(str(script), "--fail-on-refusal").returncode == 1
    locks_rows = "SELECT * FROM t FOR UPDATE"
    assert run_check("--fail-on-refusal", stdin=locks_rows).returncode == 1
    assert run_check("--allow-dml", "--fail-on-refusal", stdin=locks_rows).returncode == 0
    # Read-only forcing stays on offline: PostgreSQL itself refuses a permanent write.
    result = run_check("--allow-dml", stdin="INSERT INTO t VALUES (1)")
    assert result.stdout.startswith("REFUSED  [dml] INSERT INTO t VALUES (1)")


def test_offline_check_names_parse_errors() -> None:
    result = run_check(stdin="SELEC 1")
    assert result.returncode == 1  # SQL that cannot be judged; 2 is for usage errors
    assert "cannot parse" in result.stderr


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("CREATE TABLE t_new (x int)", "CREATE TABLE"),
        ("ALTER VIEW v RENAME COLUMN a TO b", "ALTER VIEW"),
        ("DROP MATERIALIZED VIEW mv", "DROP MATERIALIZED VIEW"),
        ("TRUNCATE t", "TRUNCATE TABLE"),
        ("SELECT 1 INTO t_into", "SELECT INTO"),
        ("CREATE MATERIALIZED VIEW mv AS SELECT 1", "CREATE MATERIALIZED VIEW"),
        ("CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'", "CREATE PROCEDURE"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("EXPLAIN ANALYZE DELETE FROM t", "DELETE"),
    ],
)
def test_offline_refusals_name_the_command_as_the_server_does(text: str, command: str) -> None:
    """pysafe check words a refusal as the server does, by PostgreSQL's command tag."""
    [result] = decide_text(text)
    assert result.verdict.message == f"cannot execute {command} in a read-only session"
