"""Misconfiguration is loud: names in pysafe.roles that match no role, and
per-database or per-role values of pysafe.* settings.

A typo ('reportng') or the wrong case ('"report team"' for "Report Team")
restricts nobody.  The next statement of a superuser session that sees the
reload warns, pysafe.status() names them and pysafe.audit() reports them as
high with the role meant.  ALTER DATABASE/ROLE SET of pysafe.* is refused for everyone.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.support import RESTRICTED_ROLES_SETTING, Server

MISTYPED = 'reportng, "report team", reporting'
ROLES_ROW = "pysafe.roles names existing roles"


def collect_warnings(conn: psycopg.Connection) -> list[str]:
    """A list that fills with the WARNING messages the session receives."""
    seen: list[str] = []

    def note(notice: psycopg.errors.Diagnostic) -> None:
        if notice.severity_nonlocalized == "WARNING":
            seen.append(notice.message_primary or "")

    conn.add_notice_handler(note)
    return seen


def warnings_of(conn: psycopg.Connection, statement: str) -> list[str]:
    seen = collect_warnings(conn)
    conn.execute(statement)
    return seen


def test_a_superuser_is_warned_once_after_the_reload(settings: Server) -> None:
    with settings.connect() as dba:
        dba.execute("SELECT 1")  # looked over the fixture's value already
        warned = collect_warnings(dba)
        settings.set_settings(roles=MISTYPED)
        settings.wait_for_setting("roles", MISTYPED, dba)  # its SHOW is the next statement
        assert warned == [
            'pysafe.roles names "reportng", which matches no role: it restricts nobody',
            'pysafe.roles names "report team", which matches no role: it restricts nobody',
        ]
        assert warnings_of(dba, "SELECT 1") == []  # once per value
    # Sessions that start with the value stay quiet, a superuser's too.
    for user in ("reporting", "writer", "postgres"):
        with settings.connect(user) as conn:
            assert warnings_of(conn, "SELECT 1") == []


def test_status_and_audit_name_them_with_the_role_meant(settings: Server) -> None:
    settings.set_settings(roles=MISTYPED)
    with settings.connect() as conn:
        rows = conn.execute("SELECT protection, live, detail FROM pysafe.status()").fetchall()
        [(live, detail)] = [(r[1], r[2]) for r in rows if r[0] == ROLES_ROW]
        assert live is False and "report team, reportng" in str(detail)
        findings = conn.execute(
            "SELECT severity, finding FROM pysafe.audit() WHERE object = 'pysafe.roles'"
        ).fetchall()
    assert sorted(findings) == [
        (
            "high",
            'pysafe.roles names "report team", which matches no role, so it restricts nobody;'
            ' did you mean "Report Team"?',
        ),
        ("high", "pysafe.roles names reportng, which matches no role, so it restricts nobody"),
    ]
    # "Report Team" really is unrestricted under this list: the finding is not idle.
    with settings.connect("Report Team") as conn:
        assert conn.execute("SELECT pysafe.session_is_restricted()").fetchone() == (False,)


def test_a_correct_list_gives_no_finding(settings: Server) -> None:
    settings.set_settings(roles='reporting, "Report Team"')
    with settings.connect() as conn:
        assert warnings_of(conn, "SELECT 1") == []
        findings = conn.execute(
            "SELECT count(*) FROM pysafe.audit() WHERE object = 'pysafe.roles'"
        ).fetchone()
    assert findings == (0,)
    settings.set_settings(roles=RESTRICTED_ROLES_SETTING)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER DATABASE postgres SET pysafe.roles = ''",
        "ALTER ROLE reporting SET pysafe.roles = ''",
        "ALTER ROLE reporting IN DATABASE postgres SET pysafe.block_dml = off",
    ],
)
def test_per_database_and_per_role_values_are_refused(server: Server, statement: str) -> None:
    with server.connect() as conn, pytest.raises(psycopg.Error) as raised:
        conn.execute(statement)
    assert raised.value.diag.sqlstate == "55P02", raised.value
    rows = server.admin(
        "SELECT count(*) FROM pg_db_role_setting WHERE setconfig::text LIKE '%pysafe.%'"
    )
    assert rows == [(0,)]
