"""Python drivers as each login: psycopg 3, psycopg2, asyncpg.

Each test reads the way applications do (parameters, type adaptation of
enums, hstore and jsonb, prepared statements, server-side cursors, COPY TO
STDOUT, pipelines) and then writes.  The restricted login's writes are
refused with 25006 and leave the database as it was; the others' succeed
and are rolled back.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import date

import asyncpg
import psycopg
import psycopg2
import psycopg2.extras
import pytest
from psycopg.types.enum import EnumInfo, register_enum
from psycopg.types.hstore import register_hstore
from psycopg.types.json import Jsonb

from tests.clients.common import (
    CLIENT_DB,
    READ_ONLY,
    Login,
    check_write,
    client_dsn,
    client_url,
)
from tests.support import Server

INSERT = "INSERT INTO public.scratch VALUES (%s, %s)"
PAID = "SELECT id, status, amount, details FROM shop.orders WHERE status = %s ORDER BY id"


def unchanged_for_restricted(server: Server, login: Login) -> Callable[[], None]:
    """A check to call at the end: nothing was written by the restricted login."""
    before = server.fingerprint(CLIENT_DB)

    def check() -> None:
        if login.restricted:
            assert server.fingerprint(CLIENT_DB) == before, f"{login.name} wrote something"

    return check


# -- psycopg 3 ------------------------------------------------------------


def test_psycopg_types_and_prepared_statements(server: Server, login: Login) -> None:
    finish = unchanged_for_restricted(server, login)
    with psycopg.connect(client_dsn(server, login), prepare_threshold=0) as conn:
        info = EnumInfo.fetch(conn, "shop.order_status")
        assert info is not None and info.labels == ["new", "paid", "shipped", "cancelled"]
        register_enum(info, conn)
        hstore = psycopg.types.TypeInfo.fetch(conn, "hstore")
        assert hstore is not None
        register_hstore(hstore, conn)
        for _ in range(3):  # prepared on the server from the first run
            rows = conn.execute(PAID, ["paid"]).fetchall()
            assert len(rows) == 100 and rows[0][1].name == "paid"
        row = conn.execute(
            "SELECT attributes, profile FROM shop.customers WHERE profile @> %s ORDER BY id",
            [Jsonb({"age": 21})],
        ).fetchone()
        assert row is not None and row[0] == {"tier": "1"} and row[1]["age"] == 21
        check_write(login, lambda: conn.execute(INSERT, [10, "psycopg"]))
        conn.rollback()
    finish()


def test_psycopg_pipeline(server: Server, login: Login) -> None:
    finish = unchanged_for_restricted(server, login)
    with psycopg.connect(client_dsn(server, login), autocommit=True) as conn:
        with conn.pipeline():
            counts = [
                conn.execute("SELECT count(*) FROM shop.orders WHERE status = %s", [status])
                for status in ("new", "paid", "shipped", "cancelled")
            ]
            total = conn.execute("SELECT shop.customer_count()")
        assert [cursor.fetchone() for cursor in counts] == [(100,)] * 4
        assert total.fetchone() == (60,)

        def write_in_a_pipeline() -> None:
            with conn.transaction(force_rollback=True), conn.pipeline() as pipeline:
                conn.execute("SELECT 1")
                conn.execute(INSERT, [11, "pipeline"])
                conn.execute("UPDATE shop.customers SET email = email WHERE id = %s", [1])
                pipeline.sync()

        check_write(login, write_in_a_pipeline)
        # The connection is usable after the refused pipeline.
        assert conn.execute("SELECT count(*) FROM shop.customers").fetchone() == (60,)
    finish()


def test_psycopg_server_side_cursors(server: Server, login: Login) -> None:
    finish = unchanged_for_restricted(server, login)
    with psycopg.connect(client_dsn(server, login)) as conn:
        with conn.cursor(name="orders_by_status", scrollable=True) as cursor:
            cursor.itersize = 30
            cursor.execute(PAID, ["shipped"])
            assert len(cursor.fetchmany(40)) == 40
            cursor.scroll(0, mode="absolute")
            assert len(list(cursor)) == 100
        conn.commit()
        conn.autocommit = True
        with conn.cursor(name="held", withhold=True, scrollable=True) as cursor:
            cursor.execute("SELECT id FROM shop.customers ORDER BY id")
            assert cursor.fetchone() == (1,)
            cursor.scroll(-1)
            assert len(cursor.fetchall()) == 60
        conn.autocommit = False
        # A cursor that locks rows: DECLARE starts its plan, which is refused.
        with conn.cursor(name="locking") as cursor:
            check_write(
                login,
                lambda: cursor.execute("SELECT id FROM shop.customers WHERE id < 5 FOR UPDATE"),
            )
        conn.rollback()
    finish()


def test_psycopg_copy(server: Server, login: Login) -> None:
    finish = unchanged_for_restricted(server, login)
    with psycopg.connect(client_dsn(server, login)) as conn:
        cursor = conn.cursor()
        with cursor.copy("COPY shop.customers TO STDOUT") as copy:
            text = b"".join(bytes(block) for block in copy)
        assert text.count(b"\n") == 60
        with cursor.copy("COPY (SELECT * FROM shop.orders) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["bigint", "bigint", "text", "numeric", "date", "bigint", "jsonb"])
            assert len(list(copy.rows())) == 400
        with cursor.copy("COPY shop.orders_2024 (id, status) TO STDOUT (FORMAT csv)") as copy:
            assert sum(bytes(block).count(b"\n") for block in copy) > 0
        conn.commit()

        def copy_in() -> None:
            with cursor.copy("COPY public.scratch FROM STDIN") as copy:
                copy.write_row((12, "copied"))

        check_write(login, copy_in)
        conn.rollback()
    finish()


def test_psycopg_read_only_toggling(server: Server, login: Login) -> None:
    """conn.read_only True, False, None across transactions, on one connection."""
    finish = unchanged_for_restricted(server, login)
    with psycopg.connect(client_dsn(server, login)) as conn:
        for read_only in (True, False, True, None, False):
            conn.read_only = read_only
            assert conn.execute("SELECT count(*) FROM shop.customer_totals").fetchone() == (60,)
            shown = conn.execute("SHOW transaction_read_only").fetchone()
            assert shown == ("on" if read_only or login.restricted else "off",)
            conn.commit()
        conn.read_only = False
        check_write(login, lambda: conn.execute(INSERT, [13, "toggled"]))
        conn.rollback()
        conn.read_only = True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(INSERT, [14, "read only"])  # every login: the driver asked for it
        conn.rollback()
    finish()


# -- psycopg2 -------------------------------------------------------------


def test_psycopg2(server: Server, login: Login) -> None:
    finish = unchanged_for_restricted(server, login)
    conn = psycopg2.connect(client_dsn(server, login))
    try:
        psycopg2.extras.register_hstore(conn)
        psycopg2.extras.register_uuid(conn_or_curs=conn)
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            cursor.execute("SELECT uid, attributes, profile FROM shop.customers WHERE id = %s", [2])
            row = cursor.fetchone()
            assert row is not None and row["attributes"] == {"tier": "2"}
            assert row["profile"]["age"] == 22
        with conn.cursor("server_side") as cursor:  # a named cursor: DECLARE on the server
            cursor.itersize = 50
            cursor.execute(PAID, ["cancelled"])
            assert sum(1 for _ in cursor) == 100
        with conn.cursor() as cursor:
            buffer = io.StringIO()
            cursor.copy_expert("COPY (SELECT * FROM shop.tenant_notes) TO STDOUT", buffer)
            assert buffer.getvalue().count("\n") == (12 if login.superuser else 6)
        conn.commit()
        for readonly in (True, False, True, False):
            conn.set_session(readonly=readonly)
            with conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM shop.monthly_revenue")
                assert cursor.fetchone() is not None
            conn.commit()
        with conn.cursor() as cursor:
            check_write(
                login,
                lambda: psycopg2.extras.execute_values(
                    cursor, "INSERT INTO public.scratch VALUES %s", [(15, "a"), (16, "b")]
                ),
            )
        conn.rollback()
    finally:
        conn.close()
    finish()


# -- asyncpg --------------------------------------------------------------


async def asyncpg_session(dsn: str, login: Login) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_builtin_type_codec("hstore", codec_name="pg_contrib.hstore")
        rows = await conn.fetch(
            "SELECT id, status, amount, details FROM shop.orders WHERE status = $1 ORDER BY id",
            "paid",
        )
        assert len(rows) == 100 and rows[0]["status"] == "paid"
        assert await conn.fetchval("SELECT attributes FROM shop.customers WHERE id = 3") == {
            "tier": "0"
        }
        statement = await conn.prepare("SELECT name FROM shop.customers WHERE id = $1")
        for customer in (1, 2, 3):
            assert await statement.fetchval(customer) == f"customer {customer}"
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            seen = [row["id"] async for row in conn.cursor("SELECT id FROM shop.orders_2025")]
            assert seen
            cursor = await conn.cursor("SELECT id FROM shop.customers ORDER BY id")
            assert len(await cursor.fetch(10)) == 10
        buffer = io.BytesIO()
        await conn.copy_from_query(
            "SELECT * FROM shop.orders WHERE ordered_on >= $1", date(2025, 1, 1), output=buffer
        )
        await conn.copy_from_table("documents", schema_name="public", output=io.BytesIO())
        assert buffer.getvalue().count(b"\n") > 0

        async def write() -> None:
            async with conn.transaction():
                await conn.execute("INSERT INTO public.scratch VALUES ($1, $2)", 17, "asyncpg")
                raise Rollback

        if login.restricted:
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError) as raised:
                await write()
            assert raised.value.sqlstate == READ_ONLY
        else:
            with pytest.raises(Rollback):
                await write()
        # Still usable afterwards.
        assert await conn.fetchval("SELECT count(*) FROM shop.customers") == 60
    finally:
        await conn.close()


class Rollback(Exception):
    """Raised inside a transaction block to roll it back."""


async def asyncpg_pool(dsn: str, login: Login) -> None:
    """A pool of one: each release runs asyncpg's reset query (pg_advisory_unlock_all(),
    CLOSE ALL, UNLISTEN *, RESET ALL) on the connection the next acquire gets."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        for _ in range(4):
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM shop.orders") == 400
                read_only = await conn.fetchval("SHOW transaction_read_only")
                assert read_only == ("on" if login.restricted else "off")
    finally:
        await pool.close()


def test_asyncpg(server: Server, login: Login) -> None:
    finish = unchanged_for_restricted(server, login)
    asyncio.run(asyncpg_session(client_url(server, login), login))
    asyncio.run(asyncpg_pool(client_url(server, login), login))
    finish()
