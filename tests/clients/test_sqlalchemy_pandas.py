"""SQLAlchemy 2 (reflection, a pooled engine toggling read-only) and pandas, as each login."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from functools import partial
from typing import Any

import pandas as pd
import psycopg
import pytest
from sqlalchemy import URL, Engine, MetaData, create_engine, inspect, select, text
from sqlalchemy.dialects.postgresql.base import PGInspector
from sqlalchemy.pool import QueuePool

from tests.clients.common import (
    CLIENT_DB,
    READ_ONLY,
    READER,
    WRITER,
    Login,
    check_write,
    client_dsn,
    sqlstate_of,
)
from tests.support import Server


def engine_for(server: Server, login: Login, driver: str = "psycopg", **options: Any) -> Engine:
    url = URL.create(
        f"postgresql+{driver}",
        username=login.name,
        host="127.0.0.1",
        port=server.cluster.port,
        database=CLIENT_DB,
    )
    return create_engine(url, **options)


@pytest.fixture
def engine(server: Server, login: Login) -> Iterator[Engine]:
    engine = engine_for(server, login)
    yield engine
    engine.dispose()


def reflection(engine: Engine) -> dict[str, Any]:
    """Everything SQLAlchemy's inspector reports about both schemas."""
    inspector = inspect(engine)
    assert isinstance(inspector, PGInspector)
    seen: dict[str, Any] = {}
    for schema in ("shop", "public"):
        tables = inspector.get_table_names(schema)
        views = inspector.get_view_names(schema)
        materialized = inspector.get_materialized_view_names(schema)
        seen[schema] = {
            "tables": tables,
            "views": views,
            "materialized": materialized,
            "foreign": inspector.get_foreign_table_names(schema),
            "sequences": inspector.get_sequence_names(schema),
            "enums": inspector.get_enums(schema),
            "domains": [domain["name"] for domain in inspector.get_domains(schema)],
        }
        for name in tables + views + materialized:
            seen[f"{schema}.{name}"] = {
                "columns": [
                    (c["name"], str(c["type"])) for c in inspector.get_columns(name, schema)
                ],
                "primary_key": inspector.get_pk_constraint(name, schema),
                "foreign_keys": inspector.get_foreign_keys(name, schema),
                "indexes": inspector.get_indexes(name, schema),
                "unique": inspector.get_unique_constraints(name, schema),
                "checks": inspector.get_check_constraints(name, schema),
                "comment": inspector.get_table_comment(name, schema),
            }
        for name in views + materialized:
            seen[f"{schema}.{name}"]["definition"] = inspector.get_view_definition(name, schema)
    return seen


def test_reflection(server: Server, engine: Engine, login: Login) -> None:
    before = server.fingerprint(CLIENT_DB)
    seen = reflection(engine)
    shop = seen["shop"]
    assert {"customers", "orders", "orders_2024", "tenant_notes"} <= set(shop["tables"])
    assert set(shop["views"]) == {"customer_totals", "paid_orders"}
    assert shop["materialized"] == ["monthly_revenue"]
    assert shop["foreign"] == ["archived_orders"]
    assert shop["enums"][0]["labels"] == ["new", "paid", "shipped", "cancelled"]
    assert shop["domains"] == ["amount"]
    assert "invoice_number" in shop["sequences"]
    assert seen["shop.customers"]["comment"] == {"text": "people who order"}
    metadata = MetaData()
    metadata.reflect(engine, schema="shop", views=True)
    assert "shop.orders" in metadata.tables and "shop.customer_totals" in metadata.tables
    with engine.connect() as conn:
        orders = metadata.tables["shop.orders"]
        assert len(conn.execute(select(orders).where(orders.c.status == "paid")).all()) == 100
    if login.restricted:
        assert server.fingerprint(CLIENT_DB) == before
        # The same grants, the same answers.
        writer = engine_for(server, WRITER)
        try:
            assert reflection(writer) == seen
        finally:
            writer.dispose()


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_pooled_engine_toggling_read_only(server: Server, login: Login, driver: str) -> None:
    """One pooled connection, checked out with postgresql_readonly True and False in turn;
    a refused write on it in between; every later checkout still reads."""
    before = server.fingerprint(CLIENT_DB)
    engine = engine_for(server, login, driver, poolclass=QueuePool, pool_size=1, max_overflow=0)
    try:
        metadata = MetaData()
        metadata.reflect(engine, schema="public", only=["scratch"])
        insert = metadata.tables["public.scratch"].insert().values(id=20, note=driver)
        for readonly in (True, False, True, False, False):
            with engine.connect().execution_options(postgresql_readonly=readonly) as conn:
                assert conn.execute(text("SELECT count(*) FROM shop.orders")).scalar() == 400
                shown = conn.execute(text("SHOW transaction_read_only")).scalar()
                assert shown == ("on" if readonly or login.restricted else "off")
                if not readonly:
                    check_write(login, partial(conn.execute, insert))
                    conn.rollback()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT shop.customer_count()")).scalar() == 60
        assert isinstance(engine.pool, QueuePool) and engine.pool.checkedin() == 1
    finally:
        engine.dispose()
    if login.restricted:
        assert server.fingerprint(CLIENT_DB) == before


def test_pandas_read_sql(server: Server, engine: Engine, login: Login) -> None:
    before = server.fingerprint(CLIENT_DB)
    frame = pd.read_sql(
        text("SELECT * FROM shop.orders WHERE status = :status ORDER BY id"),
        engine,
        params={"status": "shipped"},
    )
    assert len(frame) == 100 and set(frame["status"]) == {"shipped"}
    table = pd.read_sql_table("customers", engine, schema="shop")
    assert len(table) == 60 and "profile" in table.columns
    revenue = pd.read_sql_query("SELECT * FROM shop.monthly_revenue ORDER BY month", engine)
    assert int(revenue["n"].sum()) == 400
    with psycopg.connect(client_dsn(server, login)) as conn, warnings.catch_warnings():
        # pandas warns that it only tests SQLAlchemy and sqlite3 connections.
        warnings.simplefilter("ignore", UserWarning)
        direct = pd.read_sql(
            "SELECT * FROM shop.orders WHERE status = %(status)s ORDER BY id",
            conn,
            params={"status": "shipped"},
        )
        assert direct["id"].tolist() == frame["id"].tolist()
    # A write: DataFrame.to_sql appending rows, in a transaction rolled back.
    with engine.connect() as conn:
        rows = pd.DataFrame({"id": [21, 22], "note": ["pandas", "pandas"]})
        if login.restricted:
            with pytest.raises(Exception) as raised:
                rows.to_sql("scratch", conn, schema="public", if_exists="append", index=False)
            assert sqlstate_of(raised.value) == READ_ONLY
        else:
            assert rows.to_sql("scratch", conn, schema="public", if_exists="append", index=False)
        conn.rollback()
    if login.restricted:
        assert server.fingerprint(CLIENT_DB) == before


def test_restricted_and_unrestricted_frames_are_equal(server: Server, clientdb: str) -> None:
    frames = []
    for login in (READER, WRITER):
        engine = engine_for(server, login)
        try:
            frames.append(pd.read_sql_table("orders", engine, schema="shop"))
        finally:
            engine.dispose()
    pd.testing.assert_frame_equal(frames[0], frames[1])
