"""The app-per-user pattern (Django and others): one superuser login, an identity per request.

The application logs in as ``client_app`` (a superuser) and, for each request,
runs ``SET SESSION AUTHORIZATION <the user's role>``, does its work in
autocommit mode with atomic blocks (BEGIN, savepoints) and parameters, as
Django's ORM does through psycopg, and ends with ``RESET SESSION
AUTHORIZATION``.  A request as the restricted role reads and cannot write.
With ``pysafe.lock_session_authorization`` on it also cannot get back to the
login; the application then opens a connection per identity.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.clients.common import CLIENT_DB, READ_ONLY, Login, check_write
from tests.support import Server

LOCK_MESSAGE = "cannot change session authorization in a read-only session"


def request(conn: psycopg.Connection, login: Login) -> None:
    """One request as LOGIN: reads, then a write in a savepoint, all rolled back."""
    conn.execute(f"SET SESSION AUTHORIZATION {login.name}")
    assert conn.execute("SELECT session_user, current_user").fetchone() == (login.name,) * 2
    with conn.transaction(force_rollback=True):  # transaction.atomic()
        rows = conn.execute(
            "SELECT id, name FROM shop.customers WHERE id = ANY(%s) ORDER BY id", [[1, 2, 3]]
        ).fetchall()
        assert [row[0] for row in rows] == [1, 2, 3]
        notes = conn.execute("SELECT count(*) FROM shop.tenant_notes").fetchone()
        assert notes == ((12 if login.superuser else 6),)  # row-level security by identity

        def save() -> None:
            with conn.transaction():  # a nested atomic(): SAVEPOINT
                conn.execute(
                    "UPDATE shop.customers SET email = %s WHERE id = %s", ["new@example.com", 1]
                )
                conn.execute("INSERT INTO public.scratch VALUES (%s, %s)", [30, "request"])

        check_write(login, save)
        # The atomic block goes on after a refused savepoint.
        assert conn.execute("SELECT count(*) FROM shop.orders").fetchone() == (400,)


@pytest.mark.parametrize("lock", ["off", "on"])
def test_set_session_authorization_per_request(settings: Server, login: Login, lock: str) -> None:
    if lock == "on":
        settings.set_settings(lock_session_authorization="on")
    before = settings.fingerprint(CLIENT_DB)
    locked = login.restricted and lock == "on"
    dsn = settings.cluster.dsn("client_app", CLIENT_DB)
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        for _ in range(2):
            if locked:  # a locked identity needs a connection of its own
                conn.close()
                conn = psycopg.connect(dsn, autocommit=True)
            request(conn, login)
            back = None
            try:
                conn.execute("RESET SESSION AUTHORIZATION")
            except psycopg.Error as error:
                back = error
            if locked:
                # The session stays the user's and stays read-only.
                assert back is not None and back.sqlstate == READ_ONLY, back
                assert back.diag.message_primary == LOCK_MESSAGE
                assert conn.execute("SELECT session_user").fetchone() == (login.name,)
            else:
                assert back is None, back
                assert conn.execute("SELECT session_user").fetchone() == ("client_app",)
                # Back as the login: a superuser again, writes go through.
                with conn.transaction(force_rollback=True):
                    conn.execute("INSERT INTO public.scratch VALUES (31, 'login')")
    finally:
        conn.close()
    assert settings.fingerprint(CLIENT_DB) == before
