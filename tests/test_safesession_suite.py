"""SafeSession 1.0's regression suite, scenario by scenario, against pysafe.

pgEdge SafeSession 1.0 (2026-08-25) ships 36 regression files in its
``test/sql/`` folder.  Their code is not copied here: each file has a
``Script`` below, named after it, that runs the same scenario on a real
pysafe cluster, in this project's own statements and objects, and checks the
outcome SafeSession's expected output records: the statement runs, or it is
refused with SQLSTATE 25006 and, where SafeSession has wording for the
refusal, the same message.

How their setup maps to pysafe:

- ``SET pgedge_safesession.X`` (a superuser's session value) becomes
  ``ALTER SYSTEM SET pysafe.X`` and a reload (``Settings`` steps): pysafe's
  settings are cluster-wide only.  The roles list is the fixture's plus the
  file's roles.
- ``SET SESSION AUTHORIZATION role`` from a superuser login is used as they
  use it (``Become``); pysafe follows the session user, so this restricts.
- ``pgedge_safesession_is_restricted()`` is ``pysafe.session_is_restricted()``.
- Refusals SafeSession expects for READ WRITE requests are compared under
  ``pysafe.read_write_requests = refuse``, the setting that behaves as
  SafeSession does.

Where pysafe differs on purpose, the step says so (``differs``) and asserts
pysafe's behaviour; ``docs/coverage.md`` ("Differences from SafeSession")
names the difference and the SafeSession file, which
``test_every_difference_is_documented`` checks.  The main one: SafeSession
refuses ``set_config()``, which most of its function files use as the
marker of a side-effecting call; pysafe allows ``set_config()`` of settings
it does not protect.  Those files are therefore run twice over: once with
``set_config()`` (the difference) and once with a built-in that does have
side effects for pysafe (``nextval()``, ``lo_from_bytea()``), which must be
refused wherever SafeSession refuses its marker.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from pysafe.policy import messages
from tests.support import (
    READ_ONLY_SQLSTATE,
    REPO,
    RESTRICTED_ROLES_SETTING,
    Server,
    attempt_on,
)

DATABASE = "safesession_suite"
FUNCTIONS = messages.FUNCTIONS
SETTINGS_REFUSED = messages.READ_ONLY_SETTINGS


def command(tag: str) -> str:
    return messages.COMMAND.format(command=tag)


# SafeSession leaves a restricted SET of its settings to PostgreSQL (42501); pysafe's
# check hook refuses it first, with 25006.
PERMISSION = "permission denied to set parameter"
OWN_CHECK = "pysafe settings"


# -- steps --------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    """Runs in the file's session; ``rows``, when given, is what it returns."""

    sql: str
    rows: list[tuple[object, ...]] | None = None
    differs: str = ""


@dataclass(frozen=True)
class Refused:
    """Refused with 25006 and exactly this message."""

    sql: str
    message: str
    differs: str = ""
    pysafe: str = ""  # pysafe's wording, where it does not match SafeSession's yet


@dataclass(frozen=True)
class Fails:
    """Fails with another SQLSTATE (PostgreSQL's own error, not a refusal)."""

    sql: str
    sqlstate: str
    differs: str = ""


@dataclass(frozen=True)
class Admin:
    """Runs as the superuser on a separate connection (mid-file setup, checks)."""

    sql: str
    rows: list[tuple[object, ...]] | None = None


@dataclass(frozen=True)
class Settings:
    """ALTER SYSTEM SET pysafe.* and a reload; the file's session sees it before going on."""

    values: dict[str, str]


@dataclass(frozen=True)
class Become:
    """SET SESSION AUTHORIZATION role (from the superuser login)."""

    role: str


@dataclass(frozen=True)
class Back:
    """RESET SESSION AUTHORIZATION, and writes on again for the superuser."""


@dataclass(frozen=True)
class Bound:
    """A parameterised statement over the extended protocol (psycopg binds the values)."""

    sql: str
    params: tuple[object, ...]
    message: str | None = None  # None: it runs
    sqlstate: str | None = None
    rows: list[tuple[object, ...]] | None = None


Step = Ok | Refused | Fails | Admin | Settings | Become | Back | Bound


@dataclass(frozen=True)
class Script:
    """One SafeSession file: roles it restricts, objects it needs, what it runs."""

    file: str
    restricted: tuple[str, ...]
    setup: str
    steps: tuple[Step, ...]
    other_roles: tuple[str, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return self.file.removeprefix("safesession_")

    @property
    def roles(self) -> tuple[str, ...]:
        return self.restricted + self.other_roles


def roles_setting(*names: str) -> str:
    return ", ".join((RESTRICTED_ROLES_SETTING, *names))


WORK_MEM_4 = Ok("SET work_mem = '4MB'")


def work_mem(value: str) -> Ok:
    return Ok("SHOW work_mem", [(value,)])


# A sequence each file may advance as the marker of a side effect pysafe refuses.
MARKER_SETUP = "CREATE SEQUENCE marker; GRANT USAGE, SELECT ON SEQUENCE marker TO PUBLIC;"
MARKER_UNTOUCHED = Admin("SELECT last_value, is_called FROM marker", [(1, False)])
SET_CONFIG = (
    "SafeSession refuses set_config() as a side-effecting built-in; pysafe allows it "
    "for settings it does not protect"
)

# -- the 36 files ---------------------------------------------------------------

SCRIPTS: list[Script] = [
    Script(
        "safesession_abort",
        ("ss_abort",),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1); GRANT SELECT, INSERT ON t TO ss_abort;",
        (
            Become("ss_abort"),
            Refused("INSERT INTO t VALUES (2)", command("INSERT")),
            Ok("BEGIN"),
            Fails("SELECT 1/0", "22012"),
            Ok("ROLLBACK"),
            Ok("BEGIN"),
            Fails("SELECT 1/0", "22012"),
            Ok("COMMIT"),
            Ok("SELECT count(*) FROM t", [(1,)]),
            Refused("INSERT INTO t VALUES (3)", command("INSERT")),
        ),
    ),
    Script(
        "safesession_advanced",
        ("ss_adv",),
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'hello'), (2, 'world');"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON t TO ss_adv;",
        (
            Become("ss_adv"),
            Ok("SELECT * FROM t WHERE id = 1", [(1, "hello")]),
            Ok("SELECT * FROM t WHERE id > 0 AND val = 'hello'", [(1, "hello")]),
            Ok("SELECT count(*), sum(id), max(id), min(id) FROM t", [(2, 3, 2, 1)]),
            # pysafe refuses the write right after its parse analysis, which
            # locked the table; SafeSession at EXECUTE
            Refused(
                "PREPARE write_plan AS INSERT INTO t VALUES (3, 'no')",
                "",
                pysafe=command("INSERT"),
                differs="PREPARE",
            ),
            Fails("EXECUTE write_plan", "26000", differs="PREPARE"),
            Refused("DO $$ BEGIN INSERT INTO t VALUES (3, 'no'); END $$", command("INSERT")),
            Refused("SET TRANSACTION READ WRITE", SETTINGS_REFUSED),
            Ok("BEGIN"),
            Ok("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            Ok("SELECT * FROM t WHERE id = 1", [(1, "hello")]),
            Ok("COMMIT"),
        ),
        settings={"read_write_requests": "refuse"},
    ),
    Script(
        "safesession_aggregate",
        ("ss_agg",),
        MARKER_SETUP + "CREATE AGGREGATE agg_bad_trans(text, boolean)"
        " (SFUNC = set_config, STYPE = text, INITCOND = 'work_mem');"
        # pysafe's equivalent: a transition function that writes a large object
        "CREATE AGGREGATE agg_lo(bytea) (SFUNC = lo_from_bytea, STYPE = oid, INITCOND = '0');"
        "CREATE FUNCTION agg_final_bytea(bytea) RETURNS bytea LANGUAGE sql"
        " AS $$ SELECT $1 || nextval('marker')::text::bytea $$;"
        "CREATE AGGREGATE agg_bad_final(bytea) (SFUNC = byteacat, STYPE = bytea,"
        " INITCOND = '', FINALFUNC = agg_final_bytea);"
        "CREATE AGGREGATE agg_ok(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0');",
        (
            Admin(
                "SELECT provolatile FROM pg_proc WHERE oid = 'agg_lo(bytea)'::regprocedure",
                [("i",)],
            ),
            Become("ss_agg"),
            WORK_MEM_4,
            Ok(
                "SELECT agg_bad_trans('57MB', false) FROM (VALUES (1)) AS t(x)",
                [("57MB",)],
                differs=SET_CONFIG,
            ),
            Refused("SELECT agg_lo('x') FROM (VALUES (1)) AS t(x)", FUNCTIONS),
            Refused("SELECT agg_bad_final('x') FROM (VALUES (1)) AS t(x)", FUNCTIONS),
            Refused("SELECT (SELECT agg_lo('x') FROM (VALUES (1)) AS t(x)) AS buried", FUNCTIONS),
            Ok("SELECT agg_ok(x) FROM (VALUES (1), (2), (3)) AS t(x)", [(6,)]),
            Ok("SELECT count(*) > 0 FROM pg_class", [(True,)]),
            Back(),
            MARKER_UNTOUCHED,
            Admin("SELECT count(*) FROM pg_largeobject_metadata", [(0,)]),
        ),
    ),
    Script(
        "safesession_allcfuncs",
        ("ss_allc",),
        "CREATE FUNCTION acf_immutable_c() RETURNS int LANGUAGE c IMMUTABLE"
        " AS '$libdir/pysafe', 'pysafe_shim_settings_flags';"
        "CREATE FUNCTION acf_sql() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 1 $$;",
        (
            Become("ss_allc"),
            Ok("SELECT acf_immutable_c() IS NOT NULL", [(True,)]),
            Ok("SELECT pysafe.session_is_restricted()", [(True,)]),
            Back(),
            Settings({"block_all_c_functions": "on"}),
            Become("ss_allc"),
            Refused("SELECT acf_immutable_c()", FUNCTIONS),
            Refused("SELECT pysafe.session_is_restricted()", FUNCTIONS),
            Ok("SELECT acf_sql()", [(1,)]),
            Ok("SELECT random() < 2", [(True,)]),
            Ok("SELECT count(*) > 0 FROM pg_class", [(True,)]),
            Back(),
            Settings({"block_c_functions": "off"}),
            Become("ss_allc"),
            Ok("SELECT acf_immutable_c() IS NOT NULL", [(True,)]),
            Back(),
            Settings({"block_c_functions": "on", "block_all_c_functions": "off"}),
            Become("ss_allc"),
            Ok("SELECT acf_immutable_c() IS NOT NULL", [(True,)]),
        ),
    ),
    Script(
        "safesession_basic",
        ("ss_basic",),
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'hello'), (2, 'world');"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON t TO ss_basic;",
        (
            Become("ss_basic"),
            Ok("SELECT * FROM t ORDER BY id", [(1, "hello"), (2, "world")]),
            Refused("INSERT INTO t VALUES (3, 'no')", command("INSERT")),
            Refused("UPDATE t SET val = 'no' WHERE id = 1", command("UPDATE")),
            Refused("DELETE FROM t WHERE id = 1", command("DELETE")),
            Ok("SHOW pysafe.roles", [(roles_setting("ss_basic"),)]),
            Ok("EXPLAIN SELECT * FROM t"),
            Ok("BEGIN"),
            Ok("SELECT count(*) FROM t", [(2,)]),
            Ok("COMMIT"),
            Ok("SET work_mem = '64MB'"),
            work_mem("64MB"),
            Ok("RESET work_mem"),
            Refused("SET default_transaction_read_only = off", SETTINGS_REFUSED),
            Ok("RESET ALL"),
            Ok("SET search_path = basic, public"),
            Refused("INSERT INTO t VALUES (3, 'no')", command("INSERT")),
            Back(),
            Admin("SELECT count(*) FROM t", [(2,)]),
        ),
        settings={"read_write_requests": "refuse"},
    ),
    Script(
        "safesession_bypass",
        ("ss_bypass_ro",),
        "CREATE ROLE ss_bypass_free LOGIN; GRANT ss_bypass_free TO ss_bypass_ro;"
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'original');"
        "GRANT ALL ON t TO ss_bypass_ro, ss_bypass_free;",
        (
            Become("ss_bypass_ro"),
            Ok("SELECT * FROM t", [(1, "original")]),
            Refused("INSERT INTO t VALUES (2, 'no')", command("INSERT")),
            Ok("SET ROLE ss_bypass_free"),
            Refused("INSERT INTO t VALUES (2, 'no')", command("INSERT")),
            Ok("RESET ROLE"),
            Refused("INSERT INTO t VALUES (2, 'no')", command("INSERT")),
            Back(),
            Admin("SELECT count(*) FROM t", [(1,)]),
        ),
        other_roles=("ss_bypass_free",),
    ),
    Script(
        "safesession_copy",
        ("ss_copy",),
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'hello'), (2, 'world');"
        "GRANT ALL ON t TO ss_copy;",
        (
            Become("ss_copy"),
            Ok("COPY t TO STDOUT"),
            Refused("COPY t FROM STDIN", messages.COPY_FROM),
            Back(),
            Admin("SELECT count(*) FROM t", [(2,)]),
        ),
    ),
    Script(
        "safesession_coverage",
        ("ss_cov_grp",),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1);"
        "CREATE ROLE ss_cov_mid IN ROLE ss_cov_grp;"
        "CREATE ROLE ss_cov_leaf LOGIN IN ROLE ss_cov_mid;"
        "CREATE ROLE ss_cov_noinherit LOGIN NOINHERIT; GRANT ss_cov_grp TO ss_cov_noinherit;"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON t TO ss_cov_grp;"
        "GRANT INSERT ON t TO ss_cov_noinherit;",
        (
            Become("ss_cov_leaf"),
            Refused("INSERT INTO t VALUES (2)", command("INSERT")),
            Back(),
            Become("ss_cov_noinherit"),
            Refused("INSERT INTO t VALUES (3)", command("INSERT")),
            Back(),
            Become("ss_cov_leaf"),
            Ok("BEGIN"),
            Ok("LOCK t IN ACCESS SHARE MODE"),
            Ok("LOCK t IN ROW SHARE MODE"),
            Ok("ROLLBACK"),
            Ok("BEGIN"),
            Refused("LOCK t IN ROW EXCLUSIVE MODE", messages.LOCKS),
            Ok("ROLLBACK"),
            Ok("BEGIN"),
            Refused("LOCK t IN ACCESS EXCLUSIVE MODE", messages.LOCKS),
            Ok("ROLLBACK"),
            Ok("NOTIFY ss_channel"),
            Refused("CREATE TEMP TABLE tmp (id int)", command("CREATE TABLE")),
            Ok("DISCARD ALL"),
            Ok("DISCARD PLANS"),
            # DISCARD ALL includes RESET SESSION AUTHORIZATION: back to the superuser login
            Ok("SELECT current_setting('is_superuser')", [("on",)]),
            Back(),
            Admin("SELECT count(*) FROM t", [(1,)]),
        ),
        other_roles=("ss_cov_leaf", "ss_cov_noinherit", "ss_cov_mid"),
    ),
    Script(
        "safesession_ctas",
        ("ss_ctas",),
        "CREATE TABLE src (id int, val text); INSERT INTO src VALUES (1, 'hello');"
        "GRANT SELECT ON src TO ss_ctas; GRANT CREATE ON SCHEMA ctas TO ss_ctas;",
        (
            Become("ss_ctas"),
            Refused("CREATE TABLE dest AS SELECT * FROM src", command("CREATE TABLE AS")),
            Refused("SELECT * INTO dest2 FROM src", command("SELECT INTO")),
            Ok("SELECT * FROM src", [(1, "hello")]),
            Back(),
            Admin("SELECT count(*) FROM pg_class WHERE relname IN ('dest', 'dest2')", [(0,)]),
        ),
    ),
    Script(
        "safesession_cte",
        ("ss_cte",),
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'seed');"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON t TO ss_cte;",
        (
            Become("ss_cte"),
            Ok("WITH c AS (SELECT * FROM t) SELECT count(*) FROM c", [(1,)]),
            Refused(
                "WITH c AS (INSERT INTO t VALUES (2, 'cte') RETURNING *) SELECT * FROM c",
                messages.MODIFYING_CTE,
            ),
            Refused(
                "WITH c AS (UPDATE t SET val = 'x' RETURNING *) SELECT count(*) FROM c",
                messages.MODIFYING_CTE,
            ),
            Refused(
                "WITH c AS (DELETE FROM t RETURNING *) SELECT count(*) FROM c",
                messages.MODIFYING_CTE,
            ),
            Refused(
                "EXPLAIN (ANALYZE) WITH c AS (INSERT INTO t VALUES (3, 'ea') RETURNING *)"
                " SELECT * FROM c",
                messages.MODIFYING_CTE,
            ),
            Back(),
            Admin("SELECT * FROM t", [(1, "seed")]),
        ),
        settings={"force_read_only": "off"},
    ),
    Script(
        "safesession_ddl",
        ("ss_ddl",),
        "CREATE ROLE ss_ddl_other; CREATE TABLE t (id int, val text);"
        "GRANT ALL ON t TO ss_ddl; GRANT CREATE ON SCHEMA ddl TO ss_ddl;"
        "CREATE MATERIALIZED VIEW mv AS SELECT * FROM t; CREATE SEQUENCE ownseq;"
        "CREATE TYPE owntype AS (a int);"
        "CREATE FUNCTION trigfn() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN NEW; END $$;"
        # the restricted role owns these, so only pysafe stands in the way
        "ALTER TABLE t OWNER TO ss_ddl; ALTER MATERIALIZED VIEW mv OWNER TO ss_ddl;"
        "ALTER SEQUENCE ownseq OWNER TO ss_ddl; ALTER TYPE owntype OWNER TO ss_ddl;",
        (
            Become("ss_ddl"),
            Refused("CREATE TABLE t_new (id int)", command("CREATE TABLE")),
            Refused("ALTER TABLE t ADD COLUMN extra text", command("ALTER TABLE")),
            Refused("DROP TABLE t", command("DROP TABLE")),
            Refused("TRUNCATE t", command("TRUNCATE TABLE")),
            Refused("CREATE INDEX t_idx ON t (id)", command("CREATE INDEX")),
            Refused(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
                command("CREATE FUNCTION"),
            ),
            Refused("CREATE VIEW v AS SELECT * FROM t", command("CREATE VIEW")),
            Refused("CREATE SEQUENCE s2", command("CREATE SEQUENCE")),
            Refused("CREATE TYPE ty AS (x int, y int)", command("CREATE TYPE")),
            Refused("COMMENT ON TABLE t IS 'c'", command("COMMENT")),
            Refused("VACUUM t", messages.VACUUM),
            Refused("ANALYZE t", messages.VACUUM),
            Refused("DROP EXTENSION pysafe", command("DROP EXTENSION")),
            Refused("GRANT SELECT ON t TO ss_ddl_other", messages.PRIVILEGES),
            Refused("REVOKE SELECT ON t FROM ss_ddl_other", messages.PRIVILEGES),
            Refused("GRANT ss_ddl TO ss_ddl_other", messages.PRIVILEGES),
            Refused(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA ddl GRANT SELECT ON TABLES TO ss_ddl_other",
                messages.PRIVILEGES,
            ),
            Refused("ALTER TYPE owntype OWNER TO ss_ddl_other", messages.PRIVILEGES),
            Refused("ALTER ROLE ss_ddl PASSWORD 'unchanged'", command("ALTER ROLE")),
            Refused("DROP OWNED BY ss_ddl", command("DROP OWNED")),
            Refused("REINDEX TABLE t", command("REINDEX")),
            Refused("CLUSTER t", command("CLUSTER")),
            Refused("REFRESH MATERIALIZED VIEW mv", command("REFRESH MATERIALIZED VIEW")),
            Refused("ALTER SEQUENCE ownseq RESTART WITH 100", command("ALTER SEQUENCE")),
            Refused(
                "CREATE TRIGGER trg AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION trigfn()",
                command("CREATE TRIGGER"),
            ),
            Refused("CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING", command("CREATE RULE")),
            Back(),
            Admin(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'ddl'::regnamespace",
                [(4,)],  # t, mv, ownseq, owntype's row type
            ),
            Admin("SELECT count(*) FROM pg_trigger WHERE tgname = 'trg'", [(0,)]),
            Admin(
                "SELECT pg_get_userbyid(typowner) FROM pg_type WHERE typname = 'owntype'",
                [("ss_ddl",)],
            ),
            Admin("SELECT last_value, is_called FROM ownseq", [(1, False)]),
            Admin("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'ss_ddl'", [(True,)]),
        ),
        other_roles=("ss_ddl_other",),
    ),
    Script(
        "safesession_domainexec",
        ("ss_domexec",),
        MARKER_SETUP + "CREATE DOMAIN d_cfg AS text"
        " CHECK (set_config('work_mem', '64MB', false) IS NOT NULL);"
        "CREATE DOMAIN d_exec AS text CHECK (nextval('marker') IS NOT NULL);"
        "CREATE FUNCTION de_declare() RETURNS int LANGUAGE plpgsql"
        " AS $$ DECLARE v d_exec; BEGIN RETURN 1; END $$;"
        "CREATE FUNCTION de_declare_cfg() RETURNS int LANGUAGE plpgsql"
        " AS $$ DECLARE v d_cfg; BEGIN RETURN 1; END $$;"
        "CREATE FUNCTION de_plpgsql_returns() RETURNS d_exec LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN 'x'; END $$;"
        "CREATE FUNCTION de_sql_returns() RETURNS d_exec LANGUAGE sql AS $$ SELECT 'x'::text $$;"
        "CREATE DOMAIN d_plain AS int CHECK (VALUE IS NULL OR VALUE > 0);"
        "CREATE FUNCTION de_declare_plain() RETURNS int LANGUAGE plpgsql"
        " AS $$ DECLARE v d_plain; BEGIN RETURN 1; END $$;"
        "CREATE FUNCTION de_plpgsql_plain(n int) RETURNS d_plain LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN n; END $$;"
        "CREATE FUNCTION de_sql_plain(n int) RETURNS d_plain LANGUAGE sql AS $$ SELECT n $$;",
        (
            Become("ss_domexec"),
            WORK_MEM_4,
            Ok("SELECT de_declare_cfg()", [(1,)], differs=SET_CONFIG),
            work_mem("64MB"),
            Refused("SELECT de_declare()", FUNCTIONS),
            Refused("SELECT de_plpgsql_returns()", FUNCTIONS),
            Refused("SELECT de_sql_returns()", FUNCTIONS),
            Ok("SELECT de_declare_plain()", [(1,)]),
            Ok("SELECT de_plpgsql_plain(5)", [(5,)]),
            Fails("SELECT de_plpgsql_plain(-5)", "23514"),
            Ok("SELECT de_sql_plain(5)", [(5,)]),
            Fails("SELECT de_sql_plain(-5)", "23514"),
            Back(),
            MARKER_UNTOUCHED,
        ),
    ),
    Script(
        "safesession_domains",
        ("ss_domains",),
        MARKER_SETUP + "CREATE DOMAIN d_cfg AS text"
        " CHECK (VALUE IS NOT NULL AND set_config('work_mem', '64MB', false) IS NOT NULL);"
        "CREATE DOMAIN d_next AS text CHECK (VALUE IS NOT NULL AND nextval('marker') > 0);"
        "CREATE DOMAIN d_next_stacked AS d_next; CREATE DOMAIN d_plain AS int CHECK (VALUE > 0);",
        (
            Become("ss_domains"),
            WORK_MEM_4,
            Ok("SELECT 'x'::d_cfg", [("x",)], differs=SET_CONFIG),
            Refused("SELECT 'x'::d_next", FUNCTIONS),
            Refused("SELECT 'x'::d_next_stacked", FUNCTIONS),
            Ok("SELECT 5::d_plain", [(5,)]),
            Fails("SELECT (-5)::d_plain", "23514"),
            Back(),
            MARKER_UNTOUCHED,
        ),
    ),
    Script(
        "safesession_elevated",
        ("ss_elev_group",),
        MARKER_SETUP + "CREATE ROLE ss_elev_member LOGIN; CREATE ROLE ss_elev_admin LOGIN;"
        "GRANT ss_elev_group TO ss_elev_member;"
        "CREATE FUNCTION elev_is_restricted() RETURNS bool LANGUAGE sql SECURITY DEFINER"
        " AS $$ SELECT pysafe.session_is_restricted() $$;"
        "CREATE FUNCTION elev_next() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER"
        " AS $$ BEGIN RETURN nextval('marker'); END $$;"
        "GRANT EXECUTE ON FUNCTION elev_is_restricted(), elev_next() TO PUBLIC;",
        (
            Become("ss_elev_admin"),
            Ok("SELECT elev_is_restricted()", [(False,)]),
            Ok("SELECT pysafe.session_is_restricted()", [(False,)]),
            Ok("SELECT elev_next()", [(1,)]),
            Back(),
            Admin("ALTER SEQUENCE marker RESTART"),
            Ok("DISCARD PLANS"),
            Become("ss_elev_member"),
            Ok("SELECT pysafe.session_is_restricted()", [(True,)]),
            Ok("SELECT elev_is_restricted()", [(True,)]),
            Refused("SELECT elev_next()", FUNCTIONS),
            Back(),
            MARKER_UNTOUCHED,
        ),
        other_roles=("ss_elev_member", "ss_elev_admin"),
    ),
    Script(
        "safesession_execparams",
        ("ss_exec",),
        MARKER_SETUP + "GRANT CREATE ON SCHEMA execparams TO ss_exec;",
        (
            Become("ss_exec"),
            WORK_MEM_4,
            Ok("PREPARE ps (text) AS SELECT $1"),
            Ok("PREPARE ps_const (text) AS SELECT 'ok'::text"),
            Ok("PREPARE ps_noargs AS SELECT 1"),
            Ok(
                "EXECUTE ps (set_config('work_mem', '11MB', false))",
                [("11MB",)],
                differs=SET_CONFIG,
            ),
            WORK_MEM_4,
            Refused("EXECUTE ps (nextval('marker')::text)", FUNCTIONS),
            Refused("EXECUTE ps ('x' || nextval('marker'))", FUNCTIONS),
            Refused("EXPLAIN (COSTS OFF) EXECUTE ps (nextval('marker')::text)", FUNCTIONS),
            Refused(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)"
                " EXECUTE ps (nextval('marker')::text)",
                FUNCTIONS,
            ),
            Ok("EXECUTE ps ('plain text')", [("plain text",)]),
            Ok("EXECUTE ps_noargs", [(1,)]),
            Ok("EXECUTE ps_const (random()::text)", [("ok",)]),
            Fails("EXECUTE ps ((SELECT nextval('marker')::text))", "0A000"),
            Back(),
            Settings({"block_ddl": "off"}),
            Become("ss_exec"),
            # refused by read-only forcing before the parameter is evaluated
            Refused(
                "CREATE TABLE leak AS EXECUTE ps (nextval('marker')::text)",
                FUNCTIONS,
                pysafe="cannot execute CREATE TABLE AS in a read-only transaction",
                differs="force_read_only",
            ),
            Back(),
            Settings({"block_ddl": "on"}),
            Become("ss_exec"),
            Refused(
                "EXPLAIN (COSTS OFF) CREATE TABLE leak AS EXECUTE ps (nextval('marker')::text)",
                FUNCTIONS,
            ),
            Refused(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)"
                " CREATE TABLE leak AS EXECUTE ps (nextval('marker')::text)",
                messages.EXPLAIN_ANALYZE_WRITE,
            ),
            Back(),
            MARKER_UNTOUCHED,
            Admin("SELECT count(*) FROM pg_class WHERE relname = 'leak'", [(0,)]),
        ),
    ),
    Script(
        "safesession_explain",
        ("ss_explain",),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);"
        "GRANT SELECT ON t TO ss_explain; GRANT CREATE ON SCHEMA explain TO ss_explain;",
        (
            Become("ss_explain"),
            Ok("EXPLAIN (COSTS OFF) SELECT * FROM t"),
            Ok("EXPLAIN (COSTS OFF) CREATE TABLE no1 AS SELECT * FROM t"),
            Ok("EXPLAIN (ANALYZE false, COSTS OFF) SELECT * INTO no2 FROM t"),
            Refused(
                "EXPLAIN (ANALYZE) CREATE TABLE no3 AS SELECT * FROM t",
                messages.EXPLAIN_ANALYZE_WRITE,
            ),
            Refused(
                "EXPLAIN ANALYZE CREATE TABLE no3 AS SELECT * FROM t",
                messages.EXPLAIN_ANALYZE_WRITE,
            ),
            Refused("EXPLAIN (ANALYZE) SELECT * INTO no4 FROM t", messages.EXPLAIN_ANALYZE_WRITE),
            Refused(
                "EXPLAIN (ANALYZE) CREATE MATERIALIZED VIEW no5 AS SELECT * FROM t",
                messages.EXPLAIN_ANALYZE_WRITE,
            ),
            Refused(
                "EXPLAIN (ANALYZE off, ANALYZE on) CREATE TABLE no6 AS SELECT * FROM t",
                messages.EXPLAIN_ANALYZE_WRITE,
            ),
            Ok("EXPLAIN (ANALYZE on, ANALYZE off, COSTS OFF) CREATE TABLE no7 AS SELECT * FROM t"),
            Refused("EXPLAIN (ANALYZE) INSERT INTO t VALUES (3)", command("INSERT")),
            Back(),
            Settings({"block_ddl": "off"}),
            Become("ss_explain"),
            Refused(
                "EXPLAIN (ANALYZE) CREATE TABLE no8 AS SELECT * FROM t",
                messages.EXPLAIN_ANALYZE_WRITE,
            ),
            Back(),
            Admin("SELECT count(*) FROM pg_class WHERE relname ~ '^no[0-9]$'", [(0,)]),
            Admin("SELECT count(*) FROM t", [(2,)]),
        ),
    ),
    Script(
        "safesession_functions",
        ("ss_func",),
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'original');"
        "GRANT ALL ON t TO ss_func;"
        "CREATE FUNCTION func_write() RETURNS void LANGUAGE plpgsql"
        " AS $$ BEGIN INSERT INTO t VALUES (99, 'f'); END $$;"
        "CREATE FUNCTION func_read() RETURNS int LANGUAGE plpgsql"
        " AS $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t; RETURN n; END $$;"
        "CREATE FUNCTION func_sql_write() RETURNS void LANGUAGE sql"
        " AS $$ INSERT INTO t VALUES (98, 's') $$;"
        "CREATE FUNCTION func_sql_read() RETURNS bigint LANGUAGE sql"
        " AS $$ SELECT count(*) FROM t $$;",
        (
            Become("ss_func"),
            Ok("SELECT func_read()", [(1,)]),
            Refused("SELECT func_write()", command("INSERT")),
            Ok("SELECT func_sql_read()", [(1,)]),
            Refused("SELECT func_sql_write()", command("INSERT")),
            Back(),
            Admin("SELECT count(*) FROM t", [(1,)]),
        ),
    ),
    Script(
        "safesession_gucs",
        ("ss_guc",),
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'hello'), (2, 'world');"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON t TO ss_guc;"
        "GRANT CREATE ON SCHEMA gucs TO ss_guc;",
        (
            Become("ss_guc"),
            Refused("INSERT INTO t VALUES (3, 'no')", command("INSERT")),
            Refused("CREATE TABLE t2 (id int)", command("CREATE TABLE")),
            Back(),
            Settings({"block_dml": "off"}),
            Become("ss_guc"),
            # refused right after parse analysis, in pysafe's words, with block_dml off
            Refused(
                "INSERT INTO t VALUES (4, 'no')",
                "cannot execute INSERT in a read-only transaction",
                pysafe=command("INSERT"),
                differs="force_read_only",
            ),
            Back(),
            Settings({"block_dml": "on", "block_ddl": "off"}),
            Become("ss_guc"),
            Refused(
                "CREATE TABLE t2 (id int)", "cannot execute CREATE TABLE in a read-only transaction"
            ),
            Back(),
            Admin("SELECT count(*) FROM t", [(2,)]),
            Admin("SELECT count(*) FROM pg_class WHERE relname = 't2'", [(0,)]),
        ),
    ),
    Script(
        "safesession_guctamper",
        ("ss_tamper",),
        "",
        (
            Become("ss_tamper"),
            Refused("SET transaction_read_only = off", SETTINGS_REFUSED),
            Refused("SET default_transaction_read_only = off", SETTINGS_REFUSED),
            Refused("RESET transaction_read_only", SETTINGS_REFUSED),
            Refused("RESET default_transaction_read_only", SETTINGS_REFUSED),
            Refused("SET default_transaction_read_only TO DEFAULT", SETTINGS_REFUSED),
            Refused("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", SETTINGS_REFUSED),
            Ok("BEGIN"),
            Refused("SET TRANSACTION READ WRITE", SETTINGS_REFUSED),
            Ok("ROLLBACK"),
            Refused("SET default_transaction_read_only = 'not a boolean'", SETTINGS_REFUSED),
            Ok("SET default_transaction_read_only = on"),
            Ok("SET default_transaction_read_only = 'on'"),
            Ok("SET default_transaction_read_only TO true"),
            Ok("SET default_transaction_read_only = 1"),
            Ok("SET transaction_read_only = on"),
            Ok("SHOW default_transaction_read_only", [("on",)]),
            Ok("SET default_transaction_read_only FROM CURRENT"),
            Ok("SHOW default_transaction_read_only", [("on",)]),
            Ok("SET work_mem = '4MB'"),
            Ok("RESET work_mem"),
            Ok("BEGIN"),
            Ok("SET TRANSACTION READ ONLY"),
            Ok("COMMIT"),
            Ok("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"),
            Ok("SHOW transaction_read_only", [("on",)]),
            # pysafe's default answer to the same requests: run, stay read-only
            Back(),
            Settings({"read_write_requests": "ignore"}),
            Become("ss_tamper"),
            Ok("SET default_transaction_read_only = off", differs="read_write_requests"),
            Ok("SHOW default_transaction_read_only", [("on",)]),
            Ok(
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                differs="read_write_requests",
            ),
            Ok("SHOW transaction_read_only", [("on",)]),
        ),
        settings={"read_write_requests": "refuse"},
    ),
    Script(
        "safesession_indexmaint",
        ("ss_idx",),
        "CREATE TABLE tb (id int); INSERT INTO tb SELECT g FROM generate_series(1, 500) g;"
        "CREATE INDEX tb_idx ON tb USING brin (id) WITH (pages_per_range = 1);"
        "INSERT INTO tb SELECT g FROM generate_series(501, 5000) g;"
        "CREATE TABLE tg (a int[]); INSERT INTO tg SELECT ARRAY[g] FROM generate_series(1, 200) g;"
        "CREATE INDEX tg_idx ON tg USING gin (a) WITH (fastupdate = on);"
        "ALTER TABLE tb OWNER TO ss_idx; ALTER TABLE tg OWNER TO ss_idx;",
        (
            Become("ss_idx"),
            Refused("SELECT brin_summarize_new_values('tb_idx'::regclass)", FUNCTIONS),
            Refused("SELECT brin_summarize_range('tb_idx'::regclass, 0)", FUNCTIONS),
            Refused("SELECT brin_desummarize_range('tb_idx'::regclass, 0)", FUNCTIONS),
            Refused("SELECT gin_clean_pending_list('tg_idx'::regclass)", FUNCTIONS),
            Ok("SELECT count(*) FROM tb", [(5000,)]),
            Ok("SELECT count(*) FROM tg", [(200,)]),
            Back(),
            Settings({"block_c_functions": "off"}),
            Become("ss_idx"),
            # With the function check off, read-only forcing still refuses the write
            Refused(
                "SELECT brin_summarize_new_values('tb_idx'::regclass)",
                FUNCTIONS,
                differs="force_read_only",
            ),
        ),
    ),
    Script(
        "safesession_membership",
        ("ss_mem_ro",),
        "CREATE ROLE ss_mem_member LOGIN; CREATE ROLE ss_mem_super SUPERUSER LOGIN;"
        "GRANT ss_mem_ro TO ss_mem_member, ss_mem_super;"
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'original');"
        "GRANT ALL ON t TO ss_mem_member, ss_mem_super;",
        (
            Become("ss_mem_member"),
            Ok("SELECT * FROM t", [(1, "original")]),
            Refused("INSERT INTO t VALUES (2, 'no')", command("INSERT")),
            Back(),
            Become("ss_mem_super"),
            Ok("INSERT INTO t VALUES (2, 'superuser_allowed')"),
            Ok("SELECT count(*) FROM t", [(2,)]),
            Back(),
        ),
        other_roles=("ss_mem_member", "ss_mem_super"),
    ),
    Script(
        "safesession_plancache",
        ("ss_pc_group",),
        MARKER_SETUP + "CREATE ROLE ss_pc_admin LOGIN; CREATE ROLE ss_pc_other LOGIN;"
        "CREATE FUNCTION pc_next() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER"
        " AS $$ BEGIN RETURN nextval('marker'); END $$;",
        (
            Become("ss_pc_admin"),
            Ok("PREPARE pc_plan AS SELECT nextval('marker')"),
            Ok("EXECUTE pc_plan", [(1,)]),
            Back(),
            Settings({"roles": roles_setting("ss_pc_group", "ss_pc_admin")}),
            Become("ss_pc_admin"),
            Refused("EXECUTE pc_plan", FUNCTIONS),
            Back(),
            Ok("DEALLOCATE pc_plan"),
            Settings({"roles": roles_setting("ss_pc_group")}),
            Become("ss_pc_other"),
            Ok("SELECT pc_next()", [(2,)]),
            Back(),
            Admin("GRANT ss_pc_group TO ss_pc_other"),
            Become("ss_pc_other"),
            Refused("SELECT pc_next()", FUNCTIONS),
            Back(),
            Admin("REVOKE ss_pc_group FROM ss_pc_other"),
            Become("ss_pc_other"),
            Ok("SELECT pc_next()", [(3,)]),
            Ok("SELECT pc_next()", [(4,)]),
            Back(),
        ),
        other_roles=("ss_pc_admin", "ss_pc_other"),
    ),
    Script(
        "safesession_prepared",
        ("ss_2pc",),
        "",
        (
            Become("ss_2pc"),
            Refused("COMMIT PREPARED 'nosuch'", messages.TWO_PHASE),
            Refused("ROLLBACK PREPARED 'nosuch'", messages.TWO_PHASE),
            Ok("BEGIN"),
            Refused("PREPARE TRANSACTION 'nosuch'", messages.TWO_PHASE),
            Ok("ROLLBACK"),
            Ok("BEGIN"),
            Ok("SAVEPOINT sp"),
            Ok("RELEASE SAVEPOINT sp"),
            Ok("COMMIT"),
            Ok("BEGIN"),
            Ok("ROLLBACK"),
            Ok("PREPARE myplan AS SELECT 1"),
            Ok("EXECUTE myplan", [(1,)]),
            Ok("DEALLOCATE myplan"),
        ),
    ),
    Script(
        "safesession_procedural",
        ("ss_proc",),
        MARKER_SETUP + "CREATE TABLE t (id int); INSERT INTO t VALUES (1);"
        "GRANT SELECT, INSERT ON t TO ss_proc;"
        "CREATE PROCEDURE proc_read() LANGUAGE plpgsql"
        " AS $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t; END $$;"
        "CREATE PROCEDURE proc_write() LANGUAGE plpgsql"
        " AS $$ BEGIN INSERT INTO t VALUES (2); END $$;"
        "CREATE PROCEDURE proc_arg(x text) LANGUAGE plpgsql AS $$ BEGIN END $$;",
        (
            Become("ss_proc"),
            Refused("CHECKPOINT", command("CHECKPOINT")),
            Ok("DO $$ BEGIN PERFORM 1; END $$"),
            Ok("CALL proc_read()"),
            Refused("CALL proc_write()", command("INSERT")),
            Ok("CALL proc_arg(set_config('work_mem', '55MB', false))", differs=SET_CONFIG),
            Refused("CALL proc_arg(nextval('marker')::text)", FUNCTIONS),
            Ok("CALL proc_arg('plain text')"),
            Back(),
            Admin("SELECT count(*) FROM t", [(1,)]),
            MARKER_UNTOUCHED,
        ),
    ),
    Script(
        "safesession_rls",
        ("ss_rls",),
        MARKER_SETUP + "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'a'), (2, 'b');"
        "GRANT SELECT, INSERT ON t TO ss_rls; ALTER TABLE t ENABLE ROW LEVEL SECURITY;"
        "CREATE POLICY p_using ON t FOR SELECT USING (nextval('marker') > 0);",
        (
            Become("ss_rls"),
            Refused("SELECT * FROM t", FUNCTIONS),
            Back(),
            Admin("DROP POLICY p_using ON t; CREATE POLICY p_plain ON t FOR SELECT USING (id = 1)"),
            Become("ss_rls"),
            Ok("SELECT * FROM t", [(1, "a")]),
            Back(),
            Admin("CREATE POLICY p_withcheck ON t FOR INSERT WITH CHECK (nextval('marker') > 0)"),
            Settings({"block_dml": "off"}),
            Become("ss_rls"),
            # SafeSession names the function; pysafe's read-only forcing refuses the INSERT first
            Refused(
                "INSERT INTO t VALUES (3, 'c')",
                command("INSERT"),
                differs="force_read_only",
            ),
            Back(),
            MARKER_UNTOUCHED,
            Admin("SELECT count(*) FROM t", [(2,)]),
        ),
    ),
    Script(
        "safesession_rolecache",
        ("ss_cache_a",),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1);",
        (
            # the roles setting named ss_cache_a before the role existed
            Admin(
                "CREATE ROLE ss_cache_a LOGIN; GRANT USAGE ON SCHEMA rolecache TO ss_cache_a;"
                "GRANT INSERT ON t TO ss_cache_a"
            ),
            Become("ss_cache_a"),
            Refused("INSERT INTO t VALUES (2)", command("INSERT")),
            Back(),
            Admin(
                "CREATE ROLE ss_cache_b LOGIN; GRANT USAGE ON SCHEMA rolecache TO ss_cache_b;"
                "GRANT INSERT ON t TO ss_cache_b"
            ),
            Settings({"roles": roles_setting("ss_cache_b")}),
            Become("ss_cache_a"),
            Ok("INSERT INTO t VALUES (3)"),
            Back(),
            Become("ss_cache_b"),
            Refused("INSERT INTO t VALUES (4)", command("INSERT")),
            Back(),
            Admin("SELECT id FROM t ORDER BY id", [(1,), (3,)]),
        ),
        other_roles=("ss_cache_b",),
    ),
    Script(
        "safesession_rolescheck",
        ("ss_realrole",),
        "",
        (
            Ok("SHOW pysafe.roles", [(roles_setting("ss_realrole"),)]),
            # unknown names are accepted (and ignored until such a role exists)
            Settings({"roles": roles_setting("ss_realrole", "nosuchrole")}),
            Ok("SHOW pysafe.roles", [(roles_setting("ss_realrole", "nosuchrole"),)]),
            # a malformed list is refused and the value stays
            Fails("ALTER SYSTEM SET pysafe.roles = 'ss_realrole, \"oops'", "22023"),
            Ok("SHOW pysafe.roles", [(roles_setting("ss_realrole", "nosuchrole"),)]),
        ),
    ),
    Script(
        "safesession_secdef",
        ("ss_secdef",),
        "CREATE TABLE t (id int, val text); INSERT INTO t VALUES (1, 'original');"
        "GRANT SELECT ON t TO ss_secdef;"
        "CREATE FUNCTION secdef_write() RETURNS void LANGUAGE plpgsql SECURITY DEFINER"
        " AS $$ BEGIN INSERT INTO t VALUES (99, 'x'); END $$;"
        "CREATE FUNCTION secdef_read() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER"
        " AS $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM t; RETURN n; END $$;",
        (
            Become("ss_secdef"),
            Refused("SELECT secdef_write()", command("INSERT")),
            Ok("SELECT secdef_read()", [(1,)]),
            Ok("SELECT * FROM t", [(1, "original")]),
        ),
    ),
    Script(
        "safesession_selfdisarm",
        ("ss_disarm",),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1);GRANT SELECT, INSERT ON t TO ss_disarm;",
        (
            Become("ss_disarm"),
            Refused(
                "SET pysafe.roles = ''",
                PERMISSION,
                pysafe=messages.PYSAFE_SETTINGS,
                differs=OWN_CHECK,
            ),
            Refused(
                "SET pysafe.roles TO DEFAULT",
                PERMISSION,
                pysafe=messages.PYSAFE_SETTINGS,
                differs=OWN_CHECK,
            ),
            Refused(
                "RESET pysafe.roles", PERMISSION, pysafe=messages.PYSAFE_SETTINGS, differs=OWN_CHECK
            ),
            Refused(
                "SET pysafe.roles = 'nosuchrole'",
                PERMISSION,
                pysafe=messages.PYSAFE_SETTINGS,
                differs=OWN_CHECK,
            ),
            Refused(
                "SET pysafe.block_dml = off",
                PERMISSION,
                pysafe=messages.PYSAFE_SETTINGS,
                differs=OWN_CHECK,
            ),
            Refused(
                "SET pysafe.block_ddl = off",
                PERMISSION,
                pysafe=messages.PYSAFE_SETTINGS,
                differs=OWN_CHECK,
            ),
            Refused(
                "SET pysafe.block_c_functions = off",
                PERMISSION,
                pysafe=messages.PYSAFE_SETTINGS,
                differs=OWN_CHECK,
            ),
            Refused(
                "SET pysafe.block_all_c_functions = on",
                PERMISSION,
                pysafe=messages.PYSAFE_SETTINGS,
                differs=OWN_CHECK,
            ),
            # SafeSession refuses the set_config() call itself; PostgreSQL refuses the
            # superuser-only setting before pysafe's check hook is asked
            Fails(
                "SELECT set_config('pysafe.block_dml', 'off', false)",
                "42501",
                differs=SET_CONFIG,
            ),
            Refused("ALTER SYSTEM SET pysafe.roles = ''", command("ALTER SYSTEM")),
            Refused("ALTER SYSTEM RESET pysafe.roles", command("ALTER SYSTEM")),
            Refused("ALTER ROLE ss_disarm SET pysafe.block_dml = off", command("ALTER ROLE")),
            Refused(
                "ALTER ROLE ss_disarm SET default_transaction_read_only = off",
                command("ALTER ROLE"),
            ),
            Ok("SHOW pysafe.roles", [(roles_setting("ss_disarm"),)]),
            Ok("SHOW pysafe.block_dml", [("on",)]),
            Ok("SHOW pysafe.block_all_c_functions", [("off",)]),
            Ok("SELECT pysafe.session_is_restricted()", [(True,)]),
            Refused("INSERT INTO t VALUES (2)", command("INSERT")),
            Back(),
            Admin("SELECT count(*) FROM t", [(1,)]),
            Admin(
                "SELECT count(*) FROM pg_db_role_setting WHERE setrole = 'ss_disarm'::regrole",
                [(0,)],
            ),
        ),
    ),
    Script(
        "safesession_sequences",
        ("ss_seq",),
        "CREATE SEQUENCE s1; SELECT nextval('s1'); GRANT SELECT ON SEQUENCE s1 TO ss_seq;"
        "CREATE SEQUENCE other_seq; SELECT nextval('other_seq');",
        (
            Become("ss_seq"),
            Ok(
                "SELECT sequencename, last_value FROM pg_sequences WHERE sequencename = 's1'",
                [("s1", 1)],
            ),
            Ok("SELECT pg_sequence_last_value('s1'::regclass)", [(1,)]),
            Ok(
                "SELECT last_value IS NULL FROM pg_sequences WHERE sequencename = 'other_seq'",
                [(True,)],
            ),
            Refused("SELECT nextval('s1')", FUNCTIONS),
            Refused("SELECT setval('s1', 100)", FUNCTIONS),
            Back(),
            Admin("SELECT last_value FROM s1", [(1,)]),
        ),
    ),
    Script(
        "safesession_sqlbody",
        ("ss_sqlbody",),
        MARKER_SETUP + "CREATE FUNCTION sb_cfg() RETURNS text LANGUAGE sql"
        " AS $$ SELECT set_config('work_mem', '61MB', false) $$;"
        "CREATE FUNCTION sb_text() RETURNS bigint LANGUAGE sql AS $$ SELECT nextval('marker') $$;"
        "CREATE FUNCTION sb_atomic() RETURNS bigint LANGUAGE sql"
        " BEGIN ATOMIC; SELECT nextval('marker'); END;"
        "CREATE FUNCTION sb_nested() RETURNS bigint LANGUAGE sql AS $$ SELECT sb_text() $$;"
        "CREATE FUNCTION sb_read() RETURNS bigint LANGUAGE sql"
        " AS $$ SELECT count(*) FROM pg_class $$;"
        "CREATE FUNCTION sb_recursive(int) RETURNS int LANGUAGE sql"
        " AS $$ SELECT CASE WHEN $1 <= 0 THEN 0 ELSE sb_recursive($1 - 1) END $$;"
        "CREATE FUNCTION sb_poly(anyelement) RETURNS anyelement LANGUAGE sql AS $$ SELECT $1 $$;"
        "CREATE FUNCTION sb_poly_bad(anyelement) RETURNS anyelement LANGUAGE sql"
        " AS $$ SELECT $1 FROM (SELECT nextval('marker')) s $$;"
        "CREATE FUNCTION sb_chain0() RETURNS bigint LANGUAGE sql AS $$ SELECT nextval('marker') $$;"
        + "".join(
            f"CREATE FUNCTION sb_chain{i}() RETURNS bigint LANGUAGE sql"
            f" AS $$ SELECT sb_chain{i - 1}() $$;"
            for i in range(1, 7)
        ),
        (
            Become("ss_sqlbody"),
            WORK_MEM_4,
            Ok("SELECT sb_cfg()", [("61MB",)], differs=SET_CONFIG),
            Refused("SELECT sb_text()", FUNCTIONS),
            Refused("SELECT sb_atomic()", FUNCTIONS),
            Refused("SELECT sb_nested()", FUNCTIONS),
            Ok("SELECT sb_read() > 0", [(True,)]),
            Ok("SELECT sb_recursive(3)", [(0,)]),
            Ok("SELECT sb_poly(42)", [(42,)]),
            Refused("SELECT sb_poly_bad(42)", FUNCTIONS),
            Refused("SELECT sb_chain6()", FUNCTIONS),
            Back(),
            MARKER_UNTOUCHED,
        ),
    ),
    Script(
        "safesession_status",
        ("ss_status",),
        "",
        (
            Ok("SELECT pysafe.session_is_restricted()", [(False,)]),
            Become("ss_status"),
            Ok("SELECT pysafe.session_is_restricted()", [(True,)]),
        ),
    ),
    Script(
        "safesession_views",
        ("ss_views",),
        MARKER_SETUP + "CREATE VIEW v_cfg AS SELECT set_config('work_mem', '61MB', false);"
        "CREATE VIEW v_next AS SELECT nextval('marker');"
        "CREATE VIEW v_next_wrap AS SELECT * FROM v_next; CREATE VIEW v_plain AS SELECT 1 AS n;"
        "GRANT SELECT ON v_cfg, v_next, v_next_wrap, v_plain TO ss_views;",
        (
            Become("ss_views"),
            WORK_MEM_4,
            Ok("SELECT * FROM v_cfg", [("61MB",)], differs=SET_CONFIG),
            Refused("SELECT * FROM v_next", FUNCTIONS),
            Refused("SELECT * FROM v_next_wrap", FUNCTIONS),
            Ok("SELECT * FROM v_plain", [(1,)]),
            Back(),
            MARKER_UNTOUCHED,
        ),
    ),
    Script(
        "safesession_walker",
        ("ss_walk",),
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3);"
        "CREATE TABLE t2 (id int); INSERT INTO t2 VALUES (1), (2); CREATE SEQUENCE walk_seq;"
        "CREATE FUNCTION walk_vol(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1';"
        "CREATE FUNCTION walk_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';"
        "GRANT SELECT ON t, t2 TO ss_walk; GRANT USAGE ON SEQUENCE walk_seq TO ss_walk;",
        (
            Become("ss_walk"),
            Refused("SELECT nextval('walk_seq')", FUNCTIONS),
            Refused("SELECT id FROM t WHERE id = nextval('walk_seq')::int", FUNCTIONS),
            Refused("SELECT id FROM t ORDER BY nextval('walk_seq')", FUNCTIONS),
            Refused("SELECT count(*) FROM t HAVING count(*) > nextval('walk_seq')", FUNCTIONS),
            Refused("SELECT id FROM t WHERE id = ANY (ARRAY[nextval('walk_seq')::int])", FUNCTIONS),
            Refused(
                "SELECT a.id FROM t a JOIN t2 b ON a.id = b.id + nextval('walk_seq')::int",
                FUNCTIONS,
            ),
            Refused("SELECT (SELECT nextval('walk_seq')) FROM t", FUNCTIONS),
            Refused("WITH c AS (SELECT nextval('walk_seq') AS n) SELECT n FROM c", FUNCTIONS),
            Refused("SELECT pg_advisory_lock(42)", FUNCTIONS),
            Ok("SELECT set_config('work_mem', '5MB', false)", [("5MB",)], differs=SET_CONFIG),
            Ok("SELECT walk_vol(1)", [(1,)]),
            Ok("SELECT walk_imm(1)", [(1,)]),
            Ok("SELECT random() < 2", [(True,)]),
            Ok("SELECT count(*) FROM t", [(3,)]),
            Back(),
            Admin("SELECT last_value, is_called FROM walk_seq", [(1, False)]),
        ),
    ),
    Script(
        "safesession_xid",
        ("ss_xid",),
        "",
        (
            Become("ss_xid"),
            Refused("SELECT pg_current_xact_id()", FUNCTIONS),
            Refused("SELECT txid_current()", FUNCTIONS),
            Ok("SELECT pg_current_xact_id_if_assigned() IS NULL", [(True,)]),
            Ok("SELECT txid_current_if_assigned() IS NULL", [(True,)]),
        ),
    ),
    Script(
        "safesession_xproto",
        ("ss_xproto",),
        MARKER_SETUP + "CREATE DOMAIN d_cfg AS text"
        " CHECK (VALUE IS NOT NULL AND set_config('work_mem', '64MB', false) IS NOT NULL);"
        "CREATE DOMAIN d_next AS text CHECK (VALUE IS NOT NULL AND nextval('marker') > 0);"
        "CREATE DOMAIN d_plain AS int CHECK (VALUE > 0);",
        (
            Become("ss_xproto"),
            WORK_MEM_4,
            Bound("SELECT $1::d_next IS NOT NULL", ("x",), message=FUNCTIONS),
            Bound("SELECT 1 FROM (SELECT $1::d_next) s", ("x",), message=FUNCTIONS),
            Bound("SELECT $1::d_plain", ("5",), rows=[(5,)]),
            Bound("SELECT $1::d_plain", ("-5",), sqlstate="23514"),
            Bound("SELECT $1::text || '!'", ("x",), rows=[("x!",)]),
            Bound("SELECT $1::d_cfg IS NOT NULL", ("x",), rows=[(True,)]),
            work_mem("64MB"),
            Back(),
            MARKER_UNTOUCHED,
        ),
    ),
]
# Settings they reset to defaults with block_c_functions off, and a marker that then
# takes effect, are not repeated: pysafe's read-only forcing and function review do not
# switch off with block_c_functions for sequences (test_settings.py covers the switches).


def test_the_suite_has_36_files() -> None:
    assert len(SCRIPTS) == 36
    assert len({script.file for script in SCRIPTS}) == 36


# -- running a script -------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_database(server: Server) -> Iterator[str]:
    server.admin(f"DROP DATABASE IF EXISTS {DATABASE}")
    server.admin(f"CREATE DATABASE {DATABASE}")  # from template1, which has pysafe
    yield DATABASE
    server.admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def drop_roles(server: Server, roles: tuple[str, ...]) -> None:
    for role in roles:
        for dbname in (DATABASE, "postgres"):
            with contextlib.suppress(psycopg.errors.InvalidCatalogName):
                server.admin(
                    f"DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}')"
                    f" THEN EXECUTE 'DROP OWNED BY {role} CASCADE'; END IF; END$$",
                    dbname,
                )
        server.admin(f"DROP ROLE IF EXISTS {role}")


def run_step(server: Server, script: Script, conn: psycopg.Connection, step: Step) -> None:
    where = f"{script.file}: {getattr(step, 'sql', step)!r}"
    if isinstance(step, Become):
        conn.execute(f"SET SESSION AUTHORIZATION {step.role}")
    elif isinstance(step, Back):
        conn.execute("RESET SESSION AUTHORIZATION")
        conn.execute("SET default_transaction_read_only = off")
    elif isinstance(step, Settings):
        server.set_settings(**step.values)
        for name, value in step.values.items():
            server.wait_for_setting(name, value, conn)
    elif isinstance(step, Admin):
        with server.connect(dbname=DATABASE) as admin:
            admin.execute(f"SET search_path = {script.schema}, public")
            cursor = admin.execute(step.sql)
            if step.rows is not None:
                rows = cursor.fetchall()
                assert rows == step.rows, f"{where}: {rows}"
    elif isinstance(step, Bound):
        try:
            rows = conn.execute(step.sql.replace("$1", "%s"), step.params).fetchall()
        except psycopg.Error as error:
            if step.message is not None:
                assert error.sqlstate == READ_ONLY_SQLSTATE, (where, error)
                assert error.diag.message_primary == step.message, where
            else:
                assert error.sqlstate == step.sqlstate, (where, error)
            return
        assert step.message is None and step.sqlstate is None, f"{where}: ran"
        if step.rows is not None:
            assert rows == step.rows, where
    elif isinstance(step, Ok):
        if step.rows is None:
            refusal = attempt_on(conn, step.sql)
            assert refusal is None, f"{where}: {refusal}"
        else:
            try:
                rows = conn.execute(step.sql).fetchall()
            except psycopg.Error as error:
                raise AssertionError(
                    f"{where}: {error.sqlstate} {error} / {error.diag.context}"
                ) from error
            assert rows == step.rows, f"{where}: {rows}"
    else:
        refusal = attempt_on(conn, step.sql)
        assert refusal is not None, f"{where}: ran"
        got = f"{where}: got {refusal.sqlstate} {refusal.message!r}"
        if isinstance(step, Refused):
            assert refusal.sqlstate == READ_ONLY_SQLSTATE, got
            assert refusal.message == (step.pysafe or step.message), got
        else:
            assert refusal.sqlstate == step.sqlstate, got


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.file)
def test_safesession_file(settings: Server, suite_database: str, script: Script) -> None:
    server = settings
    drop_roles(server, script.roles)
    for role in script.restricted:
        if script.file != "safesession_rolecache":
            server.admin(f"CREATE ROLE {role} LOGIN")
    server.set_settings(roles=roles_setting(*script.restricted), **script.settings)
    try:
        with server.connect(dbname=suite_database) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {script.schema} CASCADE")
            admin.execute(f"CREATE SCHEMA {script.schema}")
            admin.execute(f"SET search_path = {script.schema}, public")
            if script.setup:
                admin.execute(script.setup)
            for role in script.roles:
                if script.file != "safesession_rolecache":
                    admin.execute(f"GRANT USAGE ON SCHEMA {script.schema} TO {role}")
        with server.connect(dbname=suite_database) as conn:
            conn.execute(f"SET search_path = {script.schema}, public")
            failures = []
            for step in script.steps:
                try:
                    run_step(server, script, conn, step)
                except AssertionError as failure:
                    failures.append(" | ".join(str(failure).splitlines()[:2]))
            assert not failures, "\n".join(failures)
    finally:
        server.admin(f"DROP SCHEMA IF EXISTS {script.schema} CASCADE", suite_database)
        drop_roles(server, script.roles)


def differing_files() -> set[str]:
    return {
        script.file for script in SCRIPTS for step in script.steps if getattr(step, "differs", "")
    }


def test_every_difference_is_documented() -> None:
    """coverage.md's "Differences from SafeSession" names each file whose outcome differs."""
    text = (REPO / "docs" / "coverage.md").read_text()
    section = text.split("## Differences from SafeSession", 1)[1]
    named = set(re.findall(r"safesession_[a-z]+", section))
    assert differing_files() <= named, differing_files() - named
