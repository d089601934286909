"""Who is restricted: the session user, or a member of a listed role; never a superuser."""

from __future__ import annotations

import psycopg
import pytest

from tests.support import Server, assert_each_refused, attempt_on

INSERT = "INSERT INTO accounts VALUES (900, 1)"


@pytest.mark.parametrize(
    ("user", "restricted"),
    [
        ("reporting", True),  # listed
        ('"Report Team"', True),  # listed as a quoted identifier
        ("analyst", True),  # member through team_mid, two levels down
        ("reporting_with_power", True),  # member of a superuser role, but not one itself
        ("writer", False),  # not listed
        ("boss", False),  # superuser member of reporting: superusers never are
        ("postgres", False),
    ],
)
def test_who_is_restricted(server: Server, user: str, restricted: bool) -> None:
    login = user.strip('"')
    with server.connect(login) as conn:
        row = conn.execute("SELECT pysafe.session_is_restricted()").fetchone()
        assert row is not None and row[0] is restricted
        refusal = attempt_on(conn, "BEGIN", INSERT, "ROLLBACK")
    if restricted:
        assert refusal is not None and refusal.sqlstate == "25006"
    else:
        assert refusal is None


def test_unknown_names_in_the_list_are_ignored(server: Server) -> None:
    # The fixture list has "nobody_here", which does not exist; the others still count.
    assert str(server.admin("SHOW pysafe.roles")[0][0]).endswith("nobody_here")
    server.assert_refused(
        "reporting", INSERT, message="cannot execute INSERT in a read-only session"
    )


def test_set_role_does_not_escape(server: Server) -> None:
    server.assert_refused("reporting_with_power", "SET ROLE power", INSERT)
    server.assert_refused("reporting_with_power", "SET ROLE power", "CREATE TABLE escape (x int)")


def test_security_definer_does_not_escape(server: Server) -> None:
    server.assert_refused(
        "reporting",
        "SELECT definer_insert()",
        message="cannot execute INSERT in a read-only session",
    )


def test_set_session_authorization_from_superuser_login_is_restricted(server: Server) -> None:
    """The app-per-user pattern: a superuser login switches to each end user's role."""
    with server.connect("app_login") as conn:
        assert attempt_on(conn, "SET SESSION AUTHORIZATION reporting") is None
        row = conn.execute("SELECT pysafe.session_is_restricted()").fetchone()
        assert row is not None and row[0] is True
        before = server.fingerprint()
        refusal = attempt_on(conn, INSERT)
        assert refusal is not None and refusal.sqlstate == "25006"
        refusal = attempt_on(conn, "CREATE TABLE escape (x int)")
        assert refusal is not None and refusal.sqlstate == "25006"
        refusal = attempt_on(conn, "SET ROLE app_login")
        refusal = attempt_on(conn, INSERT)
        assert refusal is not None and refusal.sqlstate == "25006"
        assert server.fingerprint() == before
        # Switching back to the login's own identity lifts the restriction.
        assert attempt_on(conn, "RESET SESSION AUTHORIZATION") is None
        row = conn.execute("SELECT pysafe.session_is_restricted()").fetchone()
        assert row is not None and row[0] is False


BECAME_RESTRICTED = "became restricted by pysafe while this session was open"


def test_open_sessions_obey_a_new_list_at_their_next_statement(settings: Server) -> None:
    """A session that becomes restricted while open is ended (tests/test_transitions.py)."""
    with settings.connect("writer") as conn:
        assert attempt_on(conn, "BEGIN", INSERT, "ROLLBACK") is None
        settings.set_settings(roles="writer")
        refusal = attempt_on(conn, "SHOW pysafe.roles")
        assert refusal is not None and refusal.sqlstate == "25006"
        assert BECAME_RESTRICTED in (refusal.message or "")
    with settings.connect("writer") as conn:
        refusal = attempt_on(conn, INSERT)
        assert refusal is not None and refusal.sqlstate == "25006"
    with settings.connect("reporting") as conn:
        # reporting is no longer listed: its session is unrestricted.
        assert attempt_on(conn, "BEGIN", INSERT, "ROLLBACK") is None


def test_membership_granted_later_takes_effect(server: Server) -> None:
    server.admin("CREATE ROLE late_joiner LOGIN IN ROLE can_write")
    try:
        with server.connect("late_joiner") as conn:
            assert attempt_on(conn, "BEGIN", INSERT, "ROLLBACK") is None
            server.admin("GRANT reporting TO late_joiner")
            refusal = attempt_on(conn, INSERT)
            assert refusal is not None and refusal.sqlstate == "25006"
            assert BECAME_RESTRICTED in (refusal.message or "")
        with server.connect("late_joiner") as conn:
            refusal = attempt_on(conn, INSERT)
            assert refusal is not None and refusal.sqlstate == "25006"
    finally:
        server.admin("DROP ROLE late_joiner")


def test_lock_session_authorization_keeps_the_switched_identity(settings: Server) -> None:
    """App-per-user: an injected statement must not get back to the privileged login."""
    settings.set_settings(lock_session_authorization="on")
    message = "cannot change session authorization in a read-only session"
    with settings.connect("app_login") as conn:
        assert attempt_on(conn, "SET SESSION AUTHORIZATION reporting") is None
        escapes = (
            "RESET SESSION AUTHORIZATION",
            "SET SESSION AUTHORIZATION DEFAULT",
            "SET SESSION AUTHORIZATION app_login",
            "DISCARD ALL",
        )
        assert_each_refused(conn, escapes, message)
        row = conn.execute("SELECT session_user, pysafe.session_is_restricted()").fetchone()
        assert row == ("reporting", True)
    # A restricted login that never switched is not affected (poolers' DISCARD ALL).
    settings.assert_allowed("reporting", "DISCARD ALL")
    # An unrestricted login switches freely.
    with settings.connect("app_login") as conn:
        assert (
            attempt_on(conn, "SET SESSION AUTHORIZATION writer", "RESET SESSION AUTHORIZATION")
            is None
        )


def refusal_hint(server: Server, user: str) -> str:
    with server.connect(user) as conn, pytest.raises(psycopg.Error) as raised:
        conn.execute("INSERT INTO accounts VALUES (97, 1)")
    return str(raised.value.diag.message_hint)


def test_the_hint_names_how_the_session_was_restricted(server: Server) -> None:
    """Issue 12: a role restricted with pysafe.restrict() is not told it is listed."""
    assert "listed, directly or through membership, in pysafe.roles" in refusal_hint(
        server, "analyst"
    )
    server.admin("CREATE ROLE hinted LOGIN IN ROLE can_write")
    try:
        server.admin("SELECT pysafe.restrict('hinted')")
        hint = refusal_hint(server, "hinted")
        assert "restricted with pysafe.restrict()" in hint and "pysafe.status()" in hint
    finally:
        server.admin("SELECT pysafe.unrestrict('hinted')")
        server.admin("DROP ROLE hinted")
