"""Volatile C functions of extensions: the reviewed classification, entry by entry.

The shim refuses restricted sessions every volatile C function unless
pysafe/policy/extension_functions.py clears its library and symbol (the
installer writes those to <sharedir>/pysafe/cleared_c_functions).  The tests
run in a database of their own with every reviewed extension this server
has, as a restricted role granted EXECUTE on everything and the monitoring
roles, so a refusal is pysafe's and not an ACL's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pysafe.install.files import find_pg_config
from pysafe.install.function_review import cleared_c_functions_path
from pysafe.policy.extension_functions import (
    EXTENSION_FUNCTIONS,
    REVIEWS_BY_KEY,
    ExtensionFunctionReview,
    library_name,
    reviewed_extensions,
)
from pysafe.policy.functions import null_argument_call
from tests.support import (
    FINGERPRINT_FUNCTION,
    READ_ONLY_SQLSTATE,
    WORKERS_ONLY,
    Refusal,
    Server,
    attempt_on,
)

DATABASE = "extensions"
READER = "ext_reader"
FUNCTIONS = "cannot execute functions that may have side effects in a read-only session"

# The extensions issue 10 names, and the others that reach outside or write:
# every test server must have them (contrib), or this suite proves nothing.
REQUIRED_EXTENSIONS = [
    "pgcrypto",
    "uuid-ossp",
    "tablefunc",
    "pg_trgm",
    "hstore",
    "fuzzystrmatch",
    "pg_stat_statements",
    "pgstattuple",
    "pg_buffercache",
    "dblink",
    "postgres_fdw",
    "file_fdw",
    "pg_prewarm",
    "pg_visibility",
    "amcheck",
    "pageinspect",
    "pg_freespacemap",
    "pgrowlocks",
    "pg_walinspect",
    "citext",
    "isn",
]

# Extensions with no volatile C function: their functions ran before the review too.
COMPUTING_CALLS = (
    "SELECT 'a=>1'::hstore -> 'a'",
    "SELECT levenshtein('kitten', 'sitting'), soundex('Robert')",
    "SELECT similarity('word', 'wort'), show_limit()",
    "SELECT 'ABC'::citext = 'abc'",
    "SELECT digest('x', 'sha256'), crypt('pw', '$1$abcdefgh')",
)

# Cleared functions whose body refuses this role for its own reasons (a
# superuser check inside the C code, or a server built without NUMA).
FAILS_INSIDE = {"get_raw_page_1_9", "get_raw_page_fork_1_9", "pg_buffercache_numa_pages"}

# Volatile C functions SQL can call, with their extension and C identity.
VOLATILE_C = """
SELECT p.oid::regprocedure::text, p.probin, p.prosrc, e.extname
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid
 WHERE p.prolang = 13 AND p.provolatile = 'v'
   AND p.prorettype NOT IN ('internal'::regtype, 'language_handler'::regtype,
                            'trigger'::regtype, 'event_trigger'::regtype)
   AND NOT ('internal'::regtype = ANY (p.proargtypes::oid[]))
 ORDER BY 1
"""


@pytest.fixture(scope="module")
def extensions(server: Server) -> Iterator[dict[str, list[str]]]:
    """The database with every reviewed extension; yields symbol -> signatures."""
    server.admin(f"CREATE DATABASE {DATABASE}")
    server.admin(
        f"CREATE ROLE {READER} LOGIN IN ROLE reporting, pg_monitor, pg_stat_scan_tables,"
        " pg_read_server_files"
    )
    try:
        with server.connect(dbname=DATABASE) as conn:
            available = {
                str(row[0]) for row in conn.execute("SELECT name FROM pg_available_extensions")
            }
            missing = [name for name in REQUIRED_EXTENSIONS if name not in available]
            assert not missing, f"this server lacks contrib extensions {missing}"
            for name in sorted(reviewed_extensions() & available):
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}" CASCADE')
            for name in REQUIRED_EXTENSIONS:
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}" CASCADE')
            conn.execute(FINGERPRINT_FUNCTION)
            conn.execute("CREATE TABLE dblink_target (id int)")
            conn.execute(f"GRANT ALL ON dblink_target TO {READER}")
            grant_extension_functions(conn)
            conn.execute("SELECT count(*) FROM pg_class")  # something for pg_stat_statements
            by_symbol: dict[str, list[str]] = {}
            for signature, probin, symbol, _ in conn.execute(VOLATILE_C).fetchall():
                if library_name(probin) is not None:
                    by_symbol.setdefault(str(symbol), []).append(str(signature))
        yield by_symbol
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        server.admin(f"DROP ROLE IF EXISTS {READER}")


def grant_extension_functions(conn: psycopg.Connection) -> None:
    """EXECUTE on every function of every extension (adminpack's are in pg_catalog)."""
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_depend d"
        " ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'"
    ).fetchall()
    for (signature,) in rows:
        conn.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {READER}")
    conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {READER}")


def attempt(server: Server, user: str, statement: str) -> Refusal | None:
    with server.connect(user, DATABASE) as conn:
        return attempt_on(conn, statement)


def calls_of(review: ExtensionFunctionReview, signatures: dict[str, list[str]]) -> list[str]:
    """The sample, and a NULL-argument probe of each signature with this symbol."""
    probes = [null_argument_call(signature) for signature in signatures.get(review.symbol, [])]
    if not probes:
        pytest.skip(f"{review.extension} has no {review.symbol} on this server")
    return ([review.sample] if review.sample else []) + probes


CLEARED = [review for review in EXTENSION_FUNCTIONS if review.cleared]
REFUSED = [review for review in EXTENSION_FUNCTIONS if not review.cleared]


def test_review_names_each_symbol_once() -> None:
    assert len(REVIEWS_BY_KEY) == len(EXTENSION_FUNCTIONS)


def test_library_names_are_read_as_the_shim_reads_them() -> None:
    assert library_name("$libdir/pgcrypto") == "pgcrypto"
    assert library_name("pgcrypto.so") == "pgcrypto"
    assert library_name("$libdir/uuid-ossp.so") == "uuid-ossp"
    assert library_name("/usr/lib/postgresql/15/lib/pgcrypto.so") is None
    assert library_name("$libdir/../pgcrypto") is None
    assert library_name(None) is None and library_name("") is None


def test_every_volatile_c_function_of_an_extension_is_reviewed(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    """A new extension version's functions fail here until they are reviewed."""
    with server.connect(dbname=DATABASE) as conn:
        rows = conn.execute(VOLATILE_C).fetchall()
    unreviewed = [
        (extension, signature, symbol)
        for signature, probin, symbol, extension in rows
        if (library_name(probin), symbol) not in REVIEWS_BY_KEY
    ]
    assert rows and not unreviewed


@pytest.mark.parametrize("review", CLEARED, ids=lambda r: f"{r.extension}:{r.symbol}")
def test_cleared_function_runs_for_restricted_role(
    server: Server, extensions: dict[str, list[str]], review: ExtensionFunctionReview
) -> None:
    for call in calls_of(review, extensions):
        outcome = attempt(server, READER, call)
        assert outcome is None or outcome.sqlstate != READ_ONLY_SQLSTATE, (call, outcome)
        if call == review.sample and review.symbol not in FAILS_INSIDE:
            assert outcome is None, (call, outcome)


@pytest.mark.parametrize("review", REFUSED, ids=lambda r: f"{r.extension}:{r.symbol}")
def test_refused_function_is_refused_for_restricted_role_only(
    server: Server, extensions: dict[str, list[str]], review: ExtensionFunctionReview
) -> None:
    calls = calls_of(review, extensions)
    for call in calls:
        outcome = attempt(server, READER, call)
        assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, (call, outcome)
        assert outcome.message == FUNCTIONS
    control = attempt(server, "postgres", calls[0])
    assert control is None or control.sqlstate != READ_ONLY_SQLSTATE, control


def test_computing_extension_functions_work(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    for call in COMPUTING_CALLS:
        assert attempt(server, READER, call) is None, call


def dblink_conninfo(server: Server) -> str:
    return f"host=127.0.0.1 port={server.cluster.port} dbname={DATABASE} user=postgres"


def stats_reset_time(server: Server) -> object:
    return server.admin("SELECT stats_reset FROM pg_stat_statements_info", DATABASE)[0][0]


def test_shared_state_and_remote_writes_leave_nothing_behind(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    """Each writer through several paths: direct, SQL and plpgsql wrappers, a view,
    a SECURITY DEFINER wrapper; nothing is reset and no row arrives by dblink."""
    target = dblink_conninfo(server)
    insert = f"SELECT dblink_exec('{target}', 'INSERT INTO dblink_target VALUES (1)')"
    wrappers = f"""
CREATE FUNCTION reset_sql() RETURNS void LANGUAGE sql AS 'SELECT pg_stat_statements_reset()';
CREATE FUNCTION reset_plpgsql() RETURNS void LANGUAGE plpgsql
  AS 'BEGIN PERFORM pg_stat_statements_reset(); END';
CREATE FUNCTION reset_definer() RETURNS void LANGUAGE sql SECURITY DEFINER
  AS 'SELECT pg_stat_statements_reset()';
CREATE VIEW reset_view AS SELECT pg_stat_statements_reset()::text AS reset;
CREATE FUNCTION remote_insert() RETURNS text LANGUAGE sql SECURITY DEFINER AS $${insert}$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {READER};
GRANT SELECT ON reset_view TO {READER};
"""
    with server.connect(dbname=DATABASE) as conn:
        conn.execute(wrappers)
    attempts = (
        "SELECT pg_stat_statements_reset()",
        "SELECT reset_sql()",
        "SELECT reset_plpgsql()",
        "SELECT reset_definer()",
        "SELECT * FROM reset_view",
        insert,
        "SELECT remote_insert()",
        "SELECT * FROM dblink("
        f"'{dblink_conninfo(server)}', 'INSERT INTO dblink_target VALUES (2) RETURNING id')"
        " AS t(id int)",
    )
    before, reset_at = server.fingerprint(DATABASE), stats_reset_time(server)
    for statement in attempts:
        outcome = attempt(server, READER, statement)
        assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, (statement, outcome)
    assert server.fingerprint(DATABASE) == before
    assert stats_reset_time(server) == reset_at
    # Control: a superuser's dblink insert arrives, and its reset resets.
    assert attempt(server, "postgres", insert) is None
    assert attempt(server, "postgres", "SELECT reset_sql()") is None
    assert server.admin("SELECT count(*) FROM dblink_target", DATABASE) == [(1,)]
    assert stats_reset_time(server) != reset_at


IN_A_WORKER = "SELECT count(*) FROM par_rows WHERE reset_in_worker()"


def parallel_attempt(server: Server, user: str) -> Refusal | None:
    with server.connect(user, DATABASE) as conn:
        return attempt_on(conn, *WORKERS_ONLY, IN_A_WORKER)


def test_an_extension_writer_is_refused_inside_a_parallel_worker(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    """pg_stat_statements_reset() behind a PARALLEL SAFE wrapper in a scan's filter
    runs in the workers, out of the leader's sight: the shim refuses it there."""
    with server.connect(dbname=DATABASE) as conn:
        conn.execute(
            "CREATE TABLE par_rows AS SELECT g AS id FROM generate_series(1, 20000) g;"
            f" GRANT SELECT ON par_rows TO {READER}; ANALYZE par_rows;"
            " CREATE FUNCTION reset_in_worker() RETURNS boolean LANGUAGE plpgsql"
            " VOLATILE PARALLEL SAFE AS"
            " 'BEGIN PERFORM pg_stat_statements_reset(); RETURN true; END';"
            f" GRANT EXECUTE ON FUNCTION reset_in_worker() TO {READER}"
        )
        for setting in WORKERS_ONLY:
            conn.execute(setting)
        plan = "\n".join(str(row[0]) for row in conn.execute(f"EXPLAIN VERBOSE {IN_A_WORKER}"))
    assert "Gather" in plan and "Parallel Seq Scan" in plan, plan
    assert "Filter: reset_in_worker()" in plan, plan
    reset_at = stats_reset_time(server)
    outcome = parallel_attempt(server, READER)
    assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, outcome
    assert "pg_stat_statements_reset" in (outcome.detail or ""), outcome
    assert stats_reset_time(server) == reset_at
    # Control: the same query as a superuser resets from the workers.
    assert parallel_attempt(server, "postgres") is None
    assert stats_reset_time(server) != reset_at


def test_block_all_c_functions_refuses_cleared_ones_too(
    settings: Server, extensions: dict[str, list[str]]
) -> None:
    settings.set_settings(block_all_c_functions="on")
    for call in [r.sample for r in CLEARED if r.sample and r.symbol in extensions]:
        outcome = attempt(settings, READER, call)
        assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, (call, outcome)
    for call in COMPUTING_CALLS:
        outcome = attempt(settings, READER, call)
        assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, (call, outcome)


def test_a_cleared_symbol_outside_libdir_or_unreviewed_is_refused(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    """Fail closed: the review names library and symbol, read as the shim reads them."""
    libdir = server.admin("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")[0][0]
    with server.connect(dbname=DATABASE) as conn:
        conn.execute(
            "CREATE FUNCTION bytes_by_path(integer) RETURNS bytea LANGUAGE C VOLATILE STRICT"
            f" AS '{libdir}/pgcrypto.so', 'pg_random_bytes'"
        )
        # pg_digest is IMMUTABLE as pgcrypto declares it; redeclared volatile it is unreviewed.
        conn.execute(
            "CREATE FUNCTION digest_volatile(text, text) RETURNS bytea LANGUAGE C VOLATILE"
            " STRICT AS '$libdir/pgcrypto', 'pg_digest'"
        )
        conn.execute(
            "CREATE FUNCTION bytes_again(integer) RETURNS bytea LANGUAGE C VOLATILE STRICT"
            " AS '$libdir/pgcrypto', 'pg_random_bytes'"
        )
        conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {READER}")
    for call in ("SELECT bytes_by_path(4)", "SELECT digest_volatile('x', 'md5')"):
        outcome = attempt(server, READER, call)
        assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, (call, outcome)
    assert attempt(server, READER, "SELECT bytes_again(4)") is None


def test_without_the_cleared_file_every_volatile_c_function_is_refused(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    paths = find_pg_config(server.cluster.major, Path(server.cluster.pg_config))
    path = cleared_c_functions_path(paths)
    moved = path.with_name(path.name + ".moved")
    path.rename(moved)
    try:
        outcome = attempt(server, READER, "SELECT gen_random_bytes(4)")
        assert outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE, outcome
        assert attempt(server, READER, COMPUTING_CALLS[0]) is None
    finally:
        moved.rename(path)
    assert attempt(server, READER, "SELECT gen_random_bytes(4)") is None


def test_function_review_shows_extension_functions(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    with server.connect(READER, DATABASE) as conn:
        rows = conn.execute(
            "SELECT fn::text, verdict, source, effect FROM pysafe.function_review()"
            " WHERE source <> 'built-in'"
        ).fetchall()
    verdicts = {str(fn): (str(verdict), str(source)) for fn, verdict, source, _ in rows}
    assert verdicts["gen_random_bytes(integer)"] == ("allowed", "pgcrypto")
    assert verdicts["dblink_exec(text)"] == ("refused", "dblink")
    resets = [v for fn, v in verdicts.items() if fn.startswith("pg_stat_statements_reset(")]
    assert resets == [("refused", "pg_stat_statements")]


def test_function_review_agrees_with_the_shim(
    server: Server, extensions: dict[str, list[str]]
) -> None:
    """One list: what function_review() says of each function is what a call does."""
    with server.connect(READER, DATABASE) as conn:
        rows = conn.execute(
            "SELECT fn::text, verdict FROM pysafe.function_review() WHERE source <> 'built-in'"
        ).fetchall()
    assert rows
    for fn, verdict in rows:
        outcome = attempt(server, READER, null_argument_call(str(fn).replace(" ", "")))
        refused = outcome is not None and outcome.sqlstate == READ_ONLY_SQLSTATE
        assert refused == (verdict == "refused"), (fn, verdict, outcome)
