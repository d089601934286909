"""The client suite's schema, roles and helpers.

One database, ``clientdb``, holds what a production database has: several
schemas, a partitioned table, views (one with security_barrier), a
materialized view, a table with row-level security, an enum, a domain,
jsonb, hstore and uuid columns, a large object, sequences (plain, serial,
identity), extensions, extended statistics, a foreign table, a publication,
an event trigger and default privileges.

Three logins use it, all with the same grants through ``client_group``, which
may read, write and create in it:

- ``client_reader``, restricted by ``pysafe.restrict()``;
- ``client_writer``, unrestricted: the control, whose writes succeed;
- ``postgres``, the superuser.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support import Server

CLIENT_DB = "clientdb"
BENCH_DB = "clientbench"
READ_ONLY = "25006"
# pysafe's wording; PostgreSQL's own says "read-only transaction".
PYSAFE_WORDING = "in a read-only session"


@dataclass(frozen=True)
class Login:
    name: str
    restricted: bool
    superuser: bool = False

    @property
    def label(self) -> str:
        if self.restricted:
            return "restricted"
        return "superuser" if self.superuser else "unrestricted"


READER = Login("client_reader", restricted=True)
WRITER = Login("client_writer", restricted=False)
SUPERUSER = Login("postgres", restricted=False, superuser=True)
LOGINS = (READER, WRITER, SUPERUSER)

ROLES_SQL = """
CREATE ROLE client_group NOLOGIN;
CREATE ROLE client_reader LOGIN IN ROLE client_group;
CREATE ROLE client_writer LOGIN IN ROLE client_group;
CREATE ROLE client_app LOGIN SUPERUSER;
SELECT pysafe.restrict('client_reader');
"""

DROP_ROLES_SQL = """
DROP ROLE IF EXISTS client_reader;
DROP ROLE IF EXISTS client_writer;
DROP ROLE IF EXISTS client_app;
DROP ROLE IF EXISTS client_group;
"""

SCHEMA_SQL = r"""
CREATE EXTENSION pgcrypto;
CREATE EXTENSION hstore;
CREATE EXTENSION pg_trgm;
CREATE EXTENSION "uuid-ossp";

CREATE SCHEMA shop;
CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE DOMAIN shop.amount AS numeric(12, 2) CHECK (VALUE > 0);
CREATE COLLATION shop.bytewise FROM "C";
CREATE TEXT SEARCH CONFIGURATION shop.plain_english (COPY = english);

CREATE TABLE shop.customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  uid uuid NOT NULL DEFAULT uuid_generate_v4(),
  name text NOT NULL COLLATE shop.bytewise,
  email text UNIQUE,
  attributes hstore,
  profile jsonb NOT NULL DEFAULT '{}',
  password_hash text,
  created_at timestamptz NOT NULL DEFAULT '2024-01-01'
);
COMMENT ON TABLE shop.customers IS 'people who order';
CREATE INDEX customers_name_trgm ON shop.customers USING gin (name gin_trgm_ops);
CREATE INDEX customers_profile ON shop.customers USING gin (profile jsonb_path_ops);

CREATE SEQUENCE shop.invoice_number START 1000;
CREATE TABLE shop.orders (
  id bigint NOT NULL,
  customer_id bigint NOT NULL REFERENCES shop.customers,
  status shop.order_status NOT NULL DEFAULT 'new',
  amount shop.amount NOT NULL,
  ordered_on date NOT NULL,
  invoice bigint DEFAULT nextval('shop.invoice_number'),
  details jsonb,
  PRIMARY KEY (id, ordered_on)
) PARTITION BY RANGE (ordered_on);
CREATE TABLE shop.orders_2024 PARTITION OF shop.orders
  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE shop.orders_2025 PARTITION OF shop.orders
  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE shop.orders_other PARTITION OF shop.orders DEFAULT;
CREATE INDEX orders_status ON shop.orders (status);
CREATE STATISTICS shop.orders_2024_deps (dependencies) ON status, customer_id
  FROM shop.orders_2024;

CREATE TABLE shop.tenant_notes (
  id serial PRIMARY KEY,
  tenant text NOT NULL,
  note text,
  secret bytea
);
ALTER TABLE shop.tenant_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shop.tenant_notes
  USING (tenant = current_user OR tenant = 'everyone');

CREATE VIEW shop.customer_totals AS
  SELECT c.id, c.name, count(o.id) AS orders, coalesce(sum(o.amount), 0) AS total
  FROM shop.customers c LEFT JOIN shop.orders o ON o.customer_id = c.id
  GROUP BY c.id, c.name;
CREATE VIEW shop.paid_orders WITH (security_barrier) AS
  SELECT * FROM shop.orders WHERE status IN ('paid', 'shipped');
CREATE MATERIALIZED VIEW shop.monthly_revenue AS
  SELECT date_trunc('month', ordered_on)::date AS month, sum(amount) AS revenue, count(*) AS n
  FROM shop.orders GROUP BY 1;
CREATE UNIQUE INDEX monthly_revenue_month ON shop.monthly_revenue (month);

CREATE FUNCTION shop.customer_count() RETURNS bigint LANGUAGE sql STABLE
  AS 'SELECT count(*) FROM shop.customers';
CREATE PROCEDURE shop.mark_shipped(order_id bigint) LANGUAGE sql
  AS $$UPDATE shop.orders SET status = 'shipped' WHERE id = order_id$$;

CREATE FOREIGN DATA WRAPPER client_fdw;
CREATE SERVER client_archive FOREIGN DATA WRAPPER client_fdw OPTIONS (kind 'archive');
CREATE USER MAPPING FOR client_group SERVER client_archive;
CREATE FOREIGN TABLE shop.archived_orders (id bigint, ordered_on date) SERVER client_archive;
CREATE PUBLICATION client_publication FOR TABLE shop.customers;

CREATE FUNCTION public.note_ddl() RETURNS event_trigger LANGUAGE plpgsql
  AS $$BEGIN NULL; END$$;
CREATE EVENT TRIGGER client_ddl_notes ON ddl_command_end EXECUTE FUNCTION public.note_ddl();

CREATE TABLE public.documents (
  id int PRIMARY KEY,
  title text NOT NULL,
  body oid,
  tags text[],
  search tsvector
);
-- A scratch table for the unrestricted roles' writes, owned by the group:
-- only pysafe stands between the restricted login and it.
CREATE TABLE public.scratch (id int, note text);

INSERT INTO shop.customers (name, email, attributes, profile, password_hash)
  SELECT 'customer ' || g, 'c' || g || '@example.com', hstore('tier', (g % 3)::text),
         jsonb_build_object('age', 20 + g % 50, 'tags', jsonb_build_array('a', g % 7)),
         crypt('secret' || g, gen_salt('md5'))
  FROM generate_series(1, 60) g;
INSERT INTO shop.orders (id, customer_id, status, amount, ordered_on, details)
  SELECT g, 1 + g % 60, (enum_range(NULL::shop.order_status))[1 + g % 4], 10 + g % 90,
         date '2024-01-01' + (g * 3 % 900), jsonb_build_object('items', g % 5 + 1)
  FROM generate_series(1, 400) g;
INSERT INTO shop.tenant_notes (tenant, note, secret)
  SELECT tenant, 'note ' || g, gen_random_bytes(8)
  FROM unnest(ARRAY['client_reader', 'client_writer', 'everyone', 'someone_else']) tenant,
       generate_series(1, 3) g;
INSERT INTO public.documents
  SELECT 1, 'handbook', lo_from_bytea(0, convert_to(repeat('large object text ', 200), 'UTF8')),
         ARRAY['hr', 'policy'], to_tsvector('english', 'the employee handbook');
INSERT INTO public.documents VALUES (2, 'empty', NULL, '{}', NULL);
INSERT INTO public.scratch VALUES (1, 'first');
REFRESH MATERIALIZED VIEW shop.monthly_revenue;
ALTER DATABASE clientdb SET work_mem = '8MB';
ALTER ROLE client_group IN DATABASE clientdb SET statement_timeout = '5min';
ANALYZE;

GRANT USAGE, CREATE ON SCHEMA shop, public TO client_group;
GRANT ALL ON ALL TABLES IN SCHEMA shop, public TO client_group;
GRANT ALL ON ALL SEQUENCES IN SCHEMA shop, public TO client_group;
GRANT USAGE ON FOREIGN SERVER client_archive TO client_group;
ALTER TABLE public.scratch OWNER TO client_group;
ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO client_group;
DO $$BEGIN
  EXECUTE format('GRANT SELECT, UPDATE ON LARGE OBJECT %s TO client_group',
                 (SELECT body FROM public.documents WHERE id = 1));
END$$;
"""

# Tables whose rows every login may count (the foreign table has no handler).
COUNT_TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname IN ('shop', 'public')
ORDER BY 1
"""


def client_dsn(server: Server, login: Login | str, dbname: str = CLIENT_DB) -> str:
    name = login.name if isinstance(login, Login) else login
    return server.cluster.dsn(name, dbname)


def client_url(server: Server, login: Login | str, dbname: str = CLIENT_DB) -> str:
    name = login.name if isinstance(login, Login) else login
    return f"postgresql://{name}@127.0.0.1:{server.cluster.port}/{dbname}"


def row_counts(server: Server, login: Login | str, dbname: str = CLIENT_DB) -> dict[str, int]:
    """Rows of every table as LOGIN sees them (row-level security applies)."""
    name = login.name if isinstance(login, Login) else login
    with server.connect(name, dbname) as conn:
        tables = [row[0] for row in conn.execute(COUNT_TABLES_SQL).fetchall()]
        counts = {}
        for table in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts


def client_program(name: str) -> str:
    """A client's executable, on PATH or beside this Python (the virtual environment's)."""
    found = shutil.which(name) or ""
    if not found and (Path(sys.executable).parent / name).exists():
        found = str(Path(sys.executable).parent / name)
    if not found:
        missing(f"{name} is not installed (.ci/setup installs it)")
    return found


def missing(reason: str) -> NoReturn:
    if os.environ.get("PYSAFE_ALLOW_MISSING_CLIENTS") == "1":
        pytest.skip(reason)
    pytest.fail(reason + "; set PYSAFE_ALLOW_MISSING_CLIENTS=1 to skip instead")


def sqlstate_of(error: BaseException | None, depth: int = 0) -> str | None:
    """The SQLSTATE of a driver's error, or of the driver error a wrapper carries
    (SQLAlchemy's ``orig``, pandas' chained cause)."""
    if error is None or depth > 5:
        return None
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(error, attribute, None)
        if isinstance(value, str):
            return value
    for inner in (getattr(error, "orig", None), error.__cause__, error.__context__):
        if isinstance(inner, BaseException) and (found := sqlstate_of(inner, depth + 1)):
            return found
    return None


def check_write(login: Login, write: Callable[[], object]) -> None:
    """Run a write: refused with 25006 for the restricted login, succeeds otherwise."""
    if login.restricted:
        with pytest.raises(Exception) as raised:
            write()
        assert sqlstate_of(raised.value) == READ_ONLY, repr(raised.value)
    else:
        write()
