"""Requests for a read-write transaction: ignored (the default) or refused.

Pooled drivers reset a connection with BEGIN READ WRITE, SET TRANSACTION /
SESSION CHARACTERISTICS ... READ WRITE or SET default_transaction_read_only
= off (SQLAlchemy's postgresql_readonly, psycopg's read_only = False,
psycopg2's set_session(readonly=False)).  Refusing them poisons the pooled
connection for every later checkout.  With pysafe.read_write_requests =
ignore the shim's check hooks keep the setting on, with a NOTICE, whatever
the path; the transaction stays read-only and every write is still refused.
With refuse they fail with 25006, as in SafeSession.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import psycopg2
import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import QueuePool

from tests.support import READ_ONLY_SQLSTATE, Server, attempt_on

INSERT = "INSERT INTO accounts VALUES (88, 1)"
REQUESTS: list[tuple[str, ...]] = [
    ("BEGIN READ WRITE",),
    ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",),
    ("BEGIN", "SET TRANSACTION READ WRITE"),
    ("BEGIN", "SET LOCAL transaction_read_only = off"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "BEGIN"),
    ("SET default_transaction_read_only = off", "BEGIN"),
    ('SET "Default_Transaction_Read_Only" = false', "BEGIN"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "BEGIN"),
    ("BEGIN", "SELECT set_config('transaction_read_only', 'off', true)"),
    ("SELECT rw_request_clause()", "BEGIN"),
]
# Resets pass no check hook (no NOTICE); the shim sets the value on again at once.
RESETS: list[tuple[str, ...]] = [
    ("RESET default_transaction_read_only", "BEGIN"),
    ("SET default_transaction_read_only TO DEFAULT", "BEGIN"),
    ("SELECT set_config('default_transaction_read_only', NULL, false)", "BEGIN"),
]


@pytest.fixture(scope="module")
def clause_function(server: Server) -> Iterator[None]:
    server.admin(
        "CREATE FUNCTION rw_request_clause() RETURNS int LANGUAGE sql"
        " SET default_transaction_read_only = off AS 'SELECT 1';"
        "GRANT EXECUTE ON FUNCTION rw_request_clause() TO PUBLIC"
    )
    yield
    server.admin("DROP FUNCTION rw_request_clause()")


@pytest.mark.usefixtures("clause_function")
@pytest.mark.parametrize("request_statements", REQUESTS, ids=lambda r: r[-1][:40])
def test_ignored_requests_keep_the_transaction_read_only(
    server: Server, request_statements: tuple[str, ...]
) -> None:
    before = server.fingerprint()
    with server.connect("reporting") as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        assert attempt_on(conn, *request_statements) is None
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        refusal = attempt_on(conn, INSERT)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
        assert any("read-write request ignored" in n for n in notices), notices
    assert server.fingerprint() == before


@pytest.mark.parametrize("request_statements", RESETS, ids=lambda r: r[0][:40])
def test_resets_leave_the_session_read_only(
    server: Server, request_statements: tuple[str, ...]
) -> None:
    before = server.fingerprint()
    with server.connect("reporting") as conn:
        assert attempt_on(conn, *request_statements) is None
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        refusal = attempt_on(conn, INSERT)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
    assert server.fingerprint() == before


@pytest.mark.usefixtures("clause_function")
@pytest.mark.parametrize(
    "request_statements", REQUESTS + RESETS[:2], ids=lambda r: " ".join(r)[:50]
)
def test_refused_requests(settings: Server, request_statements: tuple[str, ...]) -> None:
    settings.set_settings(read_write_requests="refuse")
    before = settings.fingerprint()
    with settings.connect("reporting") as conn:
        refusal = attempt_on(conn, *request_statements)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
    assert settings.fingerprint() == before


def test_unrestricted_roles_get_read_write_transactions(server: Server) -> None:
    for statements in REQUESTS[:3]:
        with server.connect("writer") as conn:
            assert attempt_on(conn, *statements) is None
            assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
            conn.execute("ROLLBACK")


def test_sqlalchemy_pool_survives_read_only_toggling(server: Server) -> None:
    """A checkout with postgresql_readonly=True, then plain ones: none is poisoned."""
    url = URL.create(
        "postgresql+psycopg",
        username="reporting",
        host="127.0.0.1",
        port=server.cluster.port,
        database="postgres",
    )
    engine = create_engine(url, poolclass=QueuePool, pool_size=1)
    try:
        for readonly in (True, False, True, False):
            with engine.connect().execution_options(postgresql_readonly=readonly) as conn:
                assert conn.execute(text("SELECT count(*) FROM accounts")).scalar() == 5
                assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
        with engine.connect() as conn:
            with pytest.raises(Exception) as raised:
                conn.execute(text(INSERT))
            assert getattr(raised.value.orig, "sqlstate", None) == READ_ONLY_SQLSTATE  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_psycopg_read_only_toggling(server: Server) -> None:
    with psycopg.connect(server.cluster.dsn("reporting")) as conn:
        for read_only in (True, False, None, False):
            conn.read_only = read_only
            assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (5,)
            conn.commit()
        refusal = attempt_on(conn, INSERT)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE


def test_psycopg2_set_session_toggling(server: Server) -> None:
    conn = psycopg2.connect(server.cluster.dsn("reporting"))
    try:
        for readonly in (True, False, True, False):
            conn.set_session(readonly=readonly)
            with conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM accounts")
                assert cursor.fetchone() == (5,)
            conn.commit()
        with conn.cursor() as cursor, pytest.raises(psycopg2.Error) as raised:
            cursor.execute(INSERT)
        assert raised.value.pgcode == READ_ONLY_SQLSTATE
    finally:
        conn.close()


def test_under_refuse_a_read_write_toggle_fails(settings: Server) -> None:
    """The control for the client tests above: SafeSession's behaviour poisons them."""
    settings.set_settings(read_write_requests="refuse")
    with psycopg.connect(settings.cluster.dsn("reporting")) as conn:
        conn.read_only = False
        with pytest.raises(psycopg.Error) as raised:
            conn.execute("SELECT 1")
        assert raised.value.sqlstate == READ_ONLY_SQLSTATE


@pytest.mark.parametrize("mode", ["ignore", "refuse"])
@pytest.mark.parametrize("name", ["default_transaction_read_only", "transaction_read_only"])
def test_set_from_current_keeps_read_only_and_is_allowed(
    settings: Server, mode: str, name: str
) -> None:
    """SET ... FROM CURRENT keeps the value in force: no request for READ WRITE,
    allowed under either mode (as SafeSession 1.0 allows it), by the fast path too."""
    settings.set_settings(read_write_requests=mode)
    with settings.connect("reporting") as conn:
        assert attempt_on(conn, "BEGIN", f"SET {name} FROM CURRENT", "COMMIT") is None
        assert attempt_on(conn, f"SET {name} FROM CURRENT") is None
        assert conn.execute(f"SHOW {name}").fetchone() == ("on",)
        row = conn.execute(
            "SELECT pysafe_internal.fast_path_allows(%s)", [f"SET {name} FROM CURRENT"]
        ).fetchone()
        assert row == (True,)
        refusal = attempt_on(conn, INSERT)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE
