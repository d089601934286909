"""Unrestricted roles and superusers notice nothing with pysafe loaded."""

from __future__ import annotations

import pytest

from tests.support import Server, attempt_on


@pytest.mark.parametrize("user", ["writer", "boss", "postgres"])
def test_writes_work_for_unrestricted_sessions(server: Server, user: str) -> None:
    table = f"scratch_{user}"
    with server.connect(user) as conn:
        assert conn.execute("SELECT pysafe.session_is_restricted()").fetchone() == (False,)
        assert (
            attempt_on(
                conn,
                f"CREATE TABLE {table} (id int, v text)",
                f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')",
                f"UPDATE {table} SET v = 'c' WHERE id = 1",
                f"DELETE FROM {table} WHERE id = 2",
                f"COPY {table} FROM STDIN",
                f"VACUUM {table}",
                f"ANALYZE {table}",
                "SELECT c_volatile()",
                "SET default_transaction_read_only = off",
                "BEGIN READ WRITE",
                f"LOCK {table} IN ACCESS EXCLUSIVE MODE",
                "COMMIT",
            )
            is None
        )
        rows = conn.execute(f"SELECT id, v FROM {table} ORDER BY id").fetchall()
        assert rows == [(1, "c"), (70, "1")]
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
        conn.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize(
    ("write", "undo"),
    [
        (
            "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
            "UPDATE accounts SET balance = balance - 1 WHERE id = 1",
        ),
        ("SELECT nextval('ticket_seq')", "SELECT setval('ticket_seq', 1, false)"),
        ("CREATE TABLE fp_probe ()", "DROP TABLE fp_probe"),
        ("GRANT SELECT ON accounts TO writer", "REVOKE SELECT ON accounts FROM writer"),
        ("ANALYZE accounts", None),
    ],
)
def test_fingerprint_sees_writes(server: Server, write: str, undo: str | None) -> None:
    """The detector every "nothing was written" assertion relies on can fire."""
    before = server.fingerprint()
    server.admin(write)
    assert server.fingerprint() != before
    if undo:
        server.admin(undo)
