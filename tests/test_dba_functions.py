"""The DBA surface in SQL: pysafe.restrict/unrestrict, check, sessions, status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import READ_ONLY_SQLSTATE, Server, attempt_on

INSERT = "INSERT INTO accounts VALUES (97, 1)"


@pytest.fixture
def newcomer(server: Server) -> Iterator[str]:
    """A login role that no setting restricts, with write privileges."""
    server.admin("CREATE ROLE newcomer LOGIN IN ROLE can_write")
    yield "newcomer"
    server.admin("DROP ROLE newcomer")


def sqlstate_of(server: Server, user: str, statement: str) -> str | None:
    refusal = server.attempt(user, statement)
    return None if refusal is None else refusal.sqlstate


def test_restrict_and_unrestrict_take_effect_for_open_sessions(
    server: Server, newcomer: str
) -> None:
    with server.connect(newcomer) as open_session:
        conn_before = attempt_on(open_session, "BEGIN", INSERT, "ROLLBACK")
        assert conn_before is None
        [(message,)] = server.admin(f"SELECT pysafe.restrict('{newcomer}')")
        assert "newcomer > pysafe_restricted" in str(message)
        # The open session is ended at its next statement (it became restricted) ...
        refusal = attempt_on(open_session, INSERT)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
        assert "became restricted by pysafe while this session was open" in str(refusal.message)
    with server.connect(newcomer) as open_session:
        # ... a new one is restricted, and so is one in any other database.
        refusal = attempt_on(open_session, INSERT)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
        attempt_on(open_session, "ROLLBACK")
        elsewhere = server.attempt(newcomer, "CREATE TEMP TABLE probe (x int)", dbname="template1")
        assert elsewhere is not None and elsewhere.sqlstate == READ_ONLY_SQLSTATE, elsewhere
        # Unrestricted, the open session may write again from its next statement
        # (its login's read-only default stays on until it is set off).
        [(message,)] = server.admin(f"SELECT pysafe.unrestrict('{newcomer}')")
        assert "no longer restricted" in str(message)
        assert attempt_on(open_session, "BEGIN READ WRITE", INSERT, "ROLLBACK") is None


def test_restrict_twice_is_harmless(server: Server, newcomer: str) -> None:
    server.admin(f"SELECT pysafe.restrict('{newcomer}')")
    server.admin(f"SELECT pysafe.restrict('{newcomer}')")
    server.admin(f"SELECT pysafe.unrestrict('{newcomer}')")
    [(message,)] = server.admin(f"SELECT pysafe.unrestrict('{newcomer}')")
    assert message == "newcomer was not restricted"


def test_unrestrict_refuses_a_role_listed_in_pysafe_roles(server: Server) -> None:
    with server.connect() as conn:
        refusal = attempt_on(conn, "SELECT pysafe.unrestrict('analyst')")
    assert refusal is not None and refusal.sqlstate == "55006", refusal
    assert refusal.message is not None and "analyst > team_mid > reporting" in refusal.message
    server.assert_refused("analyst", INSERT)


@pytest.mark.parametrize(
    "call",
    [
        "SELECT pysafe.restrict('writer')",
        "SELECT pysafe.unrestrict('reporting')",
        "SELECT * FROM pysafe.audit()",
    ],
)
@pytest.mark.parametrize("user", ["writer", "reporting"])
def test_admin_functions_refuse_non_superusers(server: Server, user: str, call: str) -> None:
    refusal = server.attempt(user, call)
    assert refusal is not None and refusal.sqlstate == "42501", refusal
    assert refusal.message is not None and "is for superusers" in refusal.message
    assert server.attempt("writer", "BEGIN", INSERT, "ROLLBACK") is None


@pytest.mark.parametrize(
    ("call", "sqlstate", "words"),
    [
        ("SELECT pysafe.restrict('no_such_role')", "42704", 'role "no_such_role" does not exist'),
        ("SELECT pysafe.unrestrict('no_such_role')", "42704", "does not exist"),
        ("SELECT pysafe.restrict('boss')", "22023", "never restricts superusers"),
        ("SELECT * FROM pysafe.check('SELECT 1', 'no_such_role')", "42704", "does not exist"),
        ("SELECT * FROM pysafe.check('SELEC 1')", "42601", "does not parse"),
    ],
)
def test_bad_input_is_named(server: Server, call: str, sqlstate: str, words: str) -> None:
    with server.connect() as conn:
        refusal = attempt_on(conn, call)
    assert refusal is not None and refusal.sqlstate == sqlstate, refusal
    assert refusal.message is not None and words in refusal.message, refusal


def test_check_runs_the_policy_for_a_role(server: Server) -> None:
    sql = (
        "SELECT 1; INSERT INTO accounts VALUES (1, 1); CREATE TABLE t (x int); SELECT lo_create(0)"
    )
    with server.connect("reporting") as conn:
        rows = conn.execute("SELECT verdict, rule FROM pysafe.check(%s)", [sql]).fetchall()
    assert rows == [
        ("allowed", "select"),
        ("refused", "dml"),
        ("refused", "utility"),
        ("refused", "builtin_functions"),
    ]
    # Asked about an unrestricted role, everything is allowed, and says why.
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT verdict, rule, message FROM pysafe.check(%s, 'writer')", [sql]
        ).fetchall()
    assert {row[:2] for row in rows} == {("allowed", "unrestricted")}
    assert rows[0][2] == "role writer is not restricted"


def test_sessions_lists_backends_and_their_restriction(server: Server) -> None:
    with server.connect("analyst") as analyst, server.connect("writer") as writer:
        pids = {
            "analyst": analyst.info.backend_pid,
            "writer": writer.info.backend_pid,
        }
        rows = server.admin(
            "SELECT pid, role, restricted, restricted_through FROM pysafe.sessions()"
        )
    by_pid = {row[0]: row[1:] for row in rows}
    assert by_pid[pids["analyst"]] == ("analyst", True, "analyst > team_mid > reporting")
    assert by_pid[pids["writer"]] == ("writer", False, None)
    # A restricted role may ask too, and sees its own session.
    with server.connect("reporting") as conn:
        mine = conn.execute(
            "SELECT restricted FROM pysafe.sessions() WHERE pid = pg_backend_pid()"
        ).fetchall()
    assert mine == [(True,)]


def test_status_says_why_and_which_versions(server: Server) -> None:
    with server.connect("analyst") as conn:
        rows = {p: (live, d) for p, live, d in conn.execute("SELECT * FROM pysafe.status()")}
    assert rows["this session restricted"] == (
        True,
        "session user analyst, listed through analyst > team_mid > reporting",
    )
    _, versions = rows["versions"]
    assert "pysafe 0.2.0 (extension 0.2.0)" in versions and "PostgreSQL" in versions
    assert rows["refusals logged"][0] is True
    assert rows["volatile built-ins refused unless cleared"][0] is True
    with server.connect("writer") as conn:
        rows = {p: (live, d) for p, live, d in conn.execute("SELECT * FROM pysafe.status()")}
    assert rows["this session restricted"] == (False, "session user writer is not restricted")


AUDIT_FIXTURE = """
CREATE ROLE audit_probe LOGIN IN ROLE reporting, pg_execute_server_program;
CREATE TABLE audit_rls (id int, owner name);
ALTER TABLE audit_rls ENABLE ROW LEVEL SECURITY;
CREATE VIEW audit_leaky AS SELECT * FROM audit_rls;
GRANT SELECT ON audit_leaky TO can_write;
CREATE ROLE audit_reader NOLOGIN;
CREATE FUNCTION audit_harmless() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
ALTER FUNCTION audit_harmless() OWNER TO audit_reader;
"""


@pytest.fixture
def audit_findings(server: Server) -> Iterator[Server]:
    server.admin(AUDIT_FIXTURE)
    yield server
    server.admin(
        "DROP VIEW audit_leaky; DROP TABLE audit_rls; DROP ROLE audit_probe;"
        "DROP FUNCTION audit_harmless(); DROP ROLE audit_reader"
    )


def findings_of(server: Server) -> set[tuple[str, str]]:
    return {(str(r[0]), str(r[2])) for r in server.admin("SELECT * FROM pysafe.audit()")}


def test_audit_finds_the_escape_hatches(audit_findings: Server) -> None:
    found = findings_of(audit_findings)
    assert ("high", "role reporting_with_power") in found  # member of a SUPERUSER role
    assert ("high", "role audit_probe") in found  # pg_execute_server_program
    assert ("medium", "function public.c_volatile_definer()") in found  # SECURITY DEFINER
    assert ("medium", "function public.py_volatile()") in found  # untrusted, volatile
    assert ("medium", "function public.py_stable()") in found  # untrusted, not cleared
    assert ("low", "function public.py_cleared()") in found  # untrusted, cleared by a superuser
    assert ("low", "view public.audit_leaky") in found
    assert ("info", "cluster") in found  # other databases: the command line checks them
    # A SECURITY DEFINER function whose owner cannot write is no escape hatch.
    assert not any("audit_harmless" in obj for _, obj in found)
    # Unrestricted roles are not audited, and every finding names a fix.
    rows = audit_findings.admin("SELECT object, fix FROM pysafe.audit()")
    assert all(str(fix) for _, fix in rows)
    assert not any("writer" in str(obj) for obj, _ in rows)
    # Applying the fix removes the finding.
    audit_findings.admin("ALTER VIEW audit_leaky SET (security_barrier = true)")
    audit_findings.admin("REVOKE pg_execute_server_program FROM audit_probe")
    found = findings_of(audit_findings)
    assert ("low", "view public.audit_leaky") not in found
    assert ("high", "role audit_probe") not in found


def test_audit_flags_createrole_where_it_can_undo_restrict(server: Server, newcomer: str) -> None:
    server.admin("CREATE ROLE role_admin LOGIN CREATEROLE")
    server.admin(f"SELECT pysafe.restrict('{newcomer}')")
    try:
        flagged = ("medium", "role role_admin") in findings_of(server)
        # Before 16, CREATEROLE may revoke the membership; the finding is real.
        with server.connect("role_admin") as conn:
            undone = attempt_on(conn, f"REVOKE pysafe_restricted FROM {newcomer}") is None
        assert flagged == undone == (server.cluster.major < 16)
    finally:
        server.admin(f"SELECT pysafe.unrestrict('{newcomer}')")
        server.admin("DROP ROLE role_admin")


MAPPING_FIXTURE = """
CREATE FOREIGN DATA WRAPPER audit_fdw;
CREATE SERVER audit_loopback FOREIGN DATA WRAPPER audit_fdw;
GRANT USAGE ON FOREIGN SERVER audit_loopback TO reporting;
CREATE USER MAPPING FOR reporting SERVER audit_loopback OPTIONS (user 'writer');
CREATE ROLE audit_replicator LOGIN REPLICATION IN ROLE reporting;
CREATE FUNCTION audit_owned_definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
ALTER FUNCTION audit_owned_definer() OWNER TO reporting;
"""


def test_audit_reports_user_mappings_replication_and_owned_definers(server: Server) -> None:
    server.admin(MAPPING_FIXTURE)
    try:
        rows = server.admin("SELECT severity, finding, object, fix FROM pysafe.audit()")
        mapping = [r for r in rows if r[2] == "foreign server audit_loopback"]
        assert mapping and "as writer" in str(mapping[0][1]), rows
        assert "DROP USER MAPPING FOR reporting SERVER audit_loopback" in str(mapping[0][3])
        replication = [r for r in rows if r[2] == "role audit_replicator"]
        assert replication and replication[0][0] == "high"
        assert "replication connections" in str(replication[0][1])
        assert str(replication[0][3]) == "ALTER ROLE audit_replicator NOREPLICATION"
        owned = [r for r in rows if r[2] == "function public.audit_owned_definer()"]
        assert owned and owned[0][0] == "medium" and "owns SECURITY DEFINER" in str(owned[0][1])
    finally:
        server.admin("DROP FUNCTION audit_owned_definer()")
        server.admin("DROP ROLE audit_replicator; DROP SERVER audit_loopback CASCADE")
        server.admin("DROP FOREIGN DATA WRAPPER audit_fdw")
    rows = server.admin("SELECT object FROM pysafe.audit()")
    assert ("foreign server audit_loopback",) not in rows
