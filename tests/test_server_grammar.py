"""The policy reads statements with the grammar of the server it runs in
(issue 17): install places the pglast of the server's major version on
15, 17 and 18 (pysafe/install/files.py, PLACED_GRAMMARS)."""

from __future__ import annotations

import time

import pytest

from pysafe.install.files import PGLAST_FOR_SERVER, PLACED_GRAMMARS, pglast_grammar, pglast_release
from pysafe.policy.parsing import MAX_TREE_DEPTH, TOO_DEEP_DETAIL
from tests.support import READ_ONLY_SQLSTATE, Server, attempt_on

# A keyword since PostgreSQL 16: a plain name before, a syntax error after.
SYSTEM_USER_STATEMENTS = (
    "PREPARE system_user AS SELECT 1",
    "EXPLAIN (ANALYZE) EXECUTE system_user",
)


def server_major(server: Server) -> int:
    [(version,)] = server.admin("SELECT current_setting('server_version_num')::int")
    return int(str(version)) // 10000


def placed_grammar(server: Server) -> int:
    """The grammar of the pglast PL/Python imports, asked inside the server."""
    with server.connect() as conn:
        conn.execute(
            "CREATE FUNCTION pg_temp.pglast_grammar() RETURNS int LANGUAGE plpython3u AS $$"
            "\nfrom pglast.parser import get_postgresql_version"
            "\nreturn get_postgresql_version()[0]$$"
        )
        # pysafe's function put its folder on sys.path; load it first.
        conn.execute("SELECT * FROM pysafe.check('SELECT 1')").fetchall()
        [(grammar,)] = conn.execute("SELECT pg_temp.pglast_grammar()").fetchall()
    return int(str(grammar))


def expect_the_servers_grammar(server: Server) -> None:
    assert server_major(server) in PLACED_GRAMMARS, "a server the suite runs on is not placed"


def test_install_places_the_grammar_it_says(server: Server) -> None:
    assert placed_grammar(server) == pglast_grammar(pglast_release(server_major(server)))


def test_install_places_the_servers_grammar(server: Server) -> None:
    expect_the_servers_grammar(server)
    assert placed_grammar(server) == server_major(server)


def test_a_name_that_is_a_keyword_only_in_later_versions(server: Server) -> None:
    """On 15 the server and the policy both read system_user as a name: the
    restricted role's EXPLAIN ANALYZE EXECUTE of it runs (it is refused with
    PostgreSQL 18's grammar); from 16 both refuse it as a syntax error."""
    expect_the_servers_grammar(server)
    if server_major(server) >= 16:
        for role in ("reporting", "writer"):
            refusal = server.attempt(role, SYSTEM_USER_STATEMENTS[0])
            assert refusal is not None and refusal.sqlstate == "42601", refusal
        checked = server.attempt("postgres", "SELECT * FROM pysafe.check('EXECUTE system_user')")
        assert checked is not None and checked.sqlstate == "42601", checked
        return
    for role in ("reporting", "writer"):
        with server.connect(role) as conn:
            assert attempt_on(conn, *SYSTEM_USER_STATEMENTS) is None
            # Through the extended protocol as well.
            conn.execute("DEALLOCATE system_user")
            conn.execute(SYSTEM_USER_STATEMENTS[0], prepare=True)
            assert attempt_on(conn, SYSTEM_USER_STATEMENTS[1]) is None
    rows = server.admin("SELECT verdict FROM pysafe.check('EXECUTE system_user', 'reporting')")
    assert rows == [("allowed",)], rows


@pytest.mark.parametrize("major", sorted(PGLAST_FOR_SERVER))
def test_each_release_is_that_servers_grammar(major: int) -> None:
    """pglast N embeds PostgreSQL N+10's grammar (14 gets 15's, the nearest)."""
    assert pglast_grammar(PGLAST_FOR_SERVER[major]) == max(major, 15)


def test_the_shim_refuses_a_deep_statement_before_the_policy_parses_it(server: Server) -> None:
    """pglast 5 and 7 check no depth: the shim measures the server's tree
    (installer/depth.c) and refuses what is deeper than MAX_TREE_DEPTH with
    the policy's too_deep refusal, without the seconds their parse of a
    256 kB chain takes; just under the bound the policy decides."""
    deep = "COPY (SELECT " + "+".join(["1"] * 120_000) + ") TO '/tmp/pysafe-deep'"
    with server.connect("reporting") as conn:
        started = time.monotonic()
        refusal = attempt_on(conn, deep)
        elapsed = time.monotonic() - started
        # 18's server refuses it itself (54001) before any hook runs.
        assert refusal is not None and (refusal.sqlstate, refusal.detail) in (
            (READ_ONLY_SQLSTATE, TOO_DEEP_DETAIL),
            ("54001", None),
        ), refusal
        assert elapsed < 0.5, elapsed
        shallow = "COPY (SELECT " + "+".join(["1"] * (MAX_TREE_DEPTH - 100)) + ") TO '/tmp/x'"
        refusal = attempt_on(conn, shallow)
        assert refusal is not None and refusal.detail != TOO_DEEP_DETAIL, refusal
        assert "server file" in (refusal.message or ""), refusal
