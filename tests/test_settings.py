"""SafeSession's six settings and pysafe's own: names, defaults, superuser-only, toggles."""

from __future__ import annotations

import pytest

from tests.support import Server, attempt_on

DEFAULTS = {
    "pysafe.roles": "",
    "pysafe.block_dml": "on",
    "pysafe.block_ddl": "on",
    "pysafe.block_c_functions": "on",
    "pysafe.block_all_c_functions": "off",
    "pysafe.force_read_only": "on",
    # pysafe's own, off by default
    "pysafe.lock_session_authorization": "off",
    "pysafe.allow_temp_objects": "off",
    "pysafe.read_write_requests": "ignore",
    "pysafe.log_refusals": "on",
    "pysafe.log_statement_length": "200",
}
INSERT = "INSERT INTO accounts VALUES (90, 1)"


def test_names_defaults_and_superuser_only(server: Server) -> None:
    rows = server.admin(
        "SELECT name, boot_val, context FROM pg_settings WHERE name LIKE 'pysafe.%' "
        "AND name <> 'pysafe.shim_build' ORDER BY 1"
    )
    assert {name: boot for name, boot, _ in rows} == DEFAULTS
    assert {context for _, _, context in rows} == {"superuser"}
    # Not a setting but a report: which build the server loaded; nobody can set it.
    [(build, context)] = server.admin(
        "SELECT setting, context FROM pg_settings WHERE name = 'pysafe.shim_build'"
    )
    assert context == "internal" and str(build).startswith("0.2.0-")


@pytest.mark.parametrize("user", ["reporting", "writer"])
@pytest.mark.parametrize(
    "statement",
    [
        "SET pysafe.roles = ''",
        "SET pysafe.block_dml = off",
        "SELECT set_config('pysafe.force_read_only', 'off', false)",
        "ALTER SYSTEM SET pysafe.roles = ''",
        "ALTER ROLE reporting SET pysafe.block_ddl = off",
    ],
)
def test_non_superusers_cannot_change_settings(server: Server, user: str, statement: str) -> None:
    refusal = server.attempt(user, statement)
    assert refusal is not None
    # The restricted role may be refused by pysafe first; the other by PostgreSQL.
    assert refusal.sqlstate in {"42501", "25006"}, refusal
    assert server.admin("SHOW pysafe.roles")[0][0] != ""


def try_in_rolled_back_transaction(server: Server, *statements: str) -> object:
    with server.connect("reporting") as conn:
        refusal = attempt_on(conn, "BEGIN", *statements)
        attempt_on(conn, "ROLLBACK")
    return refusal


def refused_with(refusal: object, message: str) -> bool:
    return (
        getattr(refusal, "sqlstate", None) == "25006" and getattr(refusal, "message", "") == message
    )


def test_block_dml_alone_and_off(settings: Server) -> None:
    settings.set_settings(force_read_only="off")
    refusal = try_in_rolled_back_transaction(settings, INSERT)
    assert refused_with(refusal, "cannot execute INSERT in a read-only session")
    refusal = try_in_rolled_back_transaction(settings, "COPY accounts FROM STDIN")
    assert refused_with(refusal, "cannot execute COPY FROM in a read-only session")
    settings.set_settings(block_dml="off")
    assert try_in_rolled_back_transaction(settings, INSERT) is None
    assert try_in_rolled_back_transaction(settings, "COPY accounts FROM STDIN") is None


def test_force_read_only_alone_and_off(settings: Server) -> None:
    settings.set_settings(block_dml="off", block_ddl="off")
    # Refused right after parse analysis, since forcing would refuse it (issue 17).
    refusal = try_in_rolled_back_transaction(settings, INSERT)
    assert refused_with(refusal, "cannot execute INSERT in a read-only session")
    refusal = try_in_rolled_back_transaction(settings, "CREATE TABLE t_ro (x int)")
    assert refused_with(refusal, "cannot execute CREATE TABLE in a read-only transaction")
    with settings.connect("reporting") as conn:
        attempt_on(conn, "SELECT 1")
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
    settings.set_settings(force_read_only="off")
    assert try_in_rolled_back_transaction(settings, INSERT) is None
    with settings.connect("reporting") as conn:
        attempt_on(conn, "SELECT 1")
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)


def test_block_ddl_alone_and_off(settings: Server) -> None:
    settings.set_settings(force_read_only="off")
    refusal = try_in_rolled_back_transaction(settings, "CREATE TABLE t_ddl (x int)")
    assert refused_with(refusal, "cannot execute CREATE TABLE in a read-only session")
    settings.set_settings(block_ddl="off")
    assert try_in_rolled_back_transaction(settings, "CREATE TABLE t_ddl (x int)") is None
    assert try_in_rolled_back_transaction(settings, "GRANT SELECT ON accounts TO writer") is None
    # Tampering with read-only settings stays refused whatever block_ddl says.
    settings.set_settings(read_write_requests="refuse")
    refusal = try_in_rolled_back_transaction(settings, "SET TRANSACTION READ WRITE")
    assert refused_with(
        refusal, "cannot modify read-only transaction settings in a read-only session"
    )


FUNCTIONS = "cannot execute functions that may have side effects in a read-only session"


def test_block_c_functions_both_ways(settings: Server) -> None:
    assert refused_with(settings.attempt("reporting", "SELECT c_volatile()"), FUNCTIONS)
    assert settings.attempt("reporting", "SELECT c_stable()") is None
    settings.set_settings(block_c_functions="off")
    assert settings.attempt("reporting", "SELECT c_volatile()") is None
    assert settings.attempt("reporting", "SELECT py_volatile()") is None


def test_block_all_c_functions_both_ways(settings: Server) -> None:
    settings.set_settings(block_all_c_functions="on")
    assert refused_with(settings.attempt("reporting", "SELECT c_stable()"), FUNCTIONS)
    # Built-in functions are not "C functions" in this sense: reads keep working.
    assert settings.attempt("reporting", "SELECT count(*), now() FROM accounts") is None
    # block_all_c_functions only applies when block_c_functions is on.
    settings.set_settings(block_c_functions="off")
    assert settings.attempt("reporting", "SELECT c_stable()") is None
    settings.set_settings(block_c_functions="on", block_all_c_functions="off")
    assert settings.attempt("reporting", "SELECT c_stable()") is None


def test_roles_setting_rejects_bad_list_syntax(server: Server) -> None:
    with server.connect() as conn:
        refusal = attempt_on(conn, "ALTER SYSTEM SET pysafe.roles = 'a, \"unterminated'")
    assert refusal is not None and refusal.sqlstate == "22023"


def test_read_only_forcing_alone_covers_what_postgresql_lets_through(settings: Server) -> None:
    """With every check off, forcing still refuses what passes PostgreSQL's own
    read-only check but writes: tables made by SELECT INTO under EXPLAIN
    ANALYZE, the built-in writers, VACUUM and its kin, files, two-phase commit."""
    settings.set_settings(block_dml="off", block_ddl="off", block_c_functions="off")
    settings.assert_refused(
        "reporting",
        "EXPLAIN ANALYZE CREATE TABLE t_ex AS SELECT 1",
        message="cannot execute EXPLAIN ANALYZE of a writing statement in a read-only session",
    )
    for call in ("SELECT lo_from_bytea(0, 'x')", "SELECT nextval('ticket_seq')"):
        settings.assert_refused("reporting", call, message=FUNCTIONS)
    # A table of the restricted role's own, so ownership is no obstacle.
    settings.admin("CREATE TABLE forcing_probe (id int PRIMARY KEY) ")
    settings.admin(
        "INSERT INTO forcing_probe VALUES (1); ALTER TABLE forcing_probe OWNER TO reporting"
    )
    try:
        for statements, message in WRITES_POSTGRESQL_RUNS_READ_ONLY:
            settings.assert_refused("reporting", *statements, message=message)
        # And with forcing off too, nothing of pysafe's refuses them.
        settings.set_settings(force_read_only="off")
        with settings.connect("reporting") as conn:
            conn.autocommit = False
            assert attempt_on(conn, "SELECT lo_from_bytea(0, 'x')") is None
            conn.rollback()
        for statements, message in WRITES_POSTGRESQL_RUNS_READ_ONLY:
            refusal = settings.attempt("reporting", *statements)
            if message in WRITES_SERVER_FILES:
                # Programs and server files stay refused whatever the settings.
                assert refusal is not None and refusal.sqlstate == "25006", (statements, refusal)
                continue
            # Some fail for want of privileges or settings, never as read-only.
            assert refusal is None or refusal.sqlstate != "25006", (statements, refusal)
    finally:
        settings.admin("DROP TABLE forcing_probe")


WRITES_SERVER_FILES = (
    "cannot execute ALTER SYSTEM in a read-only session",
    "cannot execute COPY TO a server file in a read-only session",
    "cannot execute COPY TO PROGRAM in a read-only session",
)

# Statements PostgreSQL runs in a read-only transaction although they write.
WRITES_POSTGRESQL_RUNS_READ_ONLY = [
    (("VACUUM forcing_probe",), "cannot execute VACUUM/ANALYZE in a read-only session"),
    (("ANALYZE forcing_probe",), "cannot execute VACUUM/ANALYZE in a read-only session"),
    (
        ("CLUSTER forcing_probe USING forcing_probe_pkey",),
        "cannot execute CLUSTER in a read-only session",
    ),
    (("REINDEX TABLE forcing_probe",), "cannot execute REINDEX in a read-only session"),
    (("CHECKPOINT",), "cannot execute CHECKPOINT in a read-only session"),
    (
        ("ALTER SYSTEM SET work_mem = '9MB'",),
        "cannot execute ALTER SYSTEM in a read-only session",
    ),
    (("LOAD 'plpgsql'",), "cannot execute LOAD in a read-only session"),
    (
        ("COPY forcing_probe TO '/tmp/pysafe-copy-probe'",),
        "cannot execute COPY TO a server file in a read-only session",
    ),
    (
        ("COPY forcing_probe TO PROGRAM 'cat'",),
        "cannot execute COPY TO PROGRAM in a read-only session",
    ),
    (
        ("BEGIN", "PREPARE TRANSACTION 'pysafe_probe'"),
        "cannot execute two-phase commit statements in a read-only session",
    ),
    (
        ("COMMIT PREPARED 'pysafe_probe'",),
        "cannot execute two-phase commit statements in a read-only session",
    ),
]
