"""Volatile built-in functions: the reviewed classification, entry by entry.

Built-ins never reach the fmgr hooks.  The shim allows a restricted session
a volatile built-in only if pysafe/policy/functions.py clears it (the
installer writes the OIDs of every other volatile built-in, writers and
unreviewed ones alike, to <sharedir>/pysafe/refused_builtins).
The restricted role is granted EXECUTE on every reviewed function, so a
refusal is pysafe's and not an ACL's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pysafe.install import function_review
from pysafe.install.files import find_pg_config
from pysafe.install.function_review import FIRST_GENBKI_OID, refused_builtins_path
from pysafe.policy.functions import (
    CLEARED_FUNCTIONS,
    REVIEWED_FUNCTIONS,
    WRITING_FUNCTIONS,
    FunctionReview,
)
from tests.support import READ_ONLY_SQLSTATE, Server, attempt_on

UNDEFINED_FUNCTION = "42883"
NOT_VOLATILE_WRITERS = {"txid_current()", "pg_current_xact_id()"}
FUNCTIONS = "cannot execute functions that may have side effects in a read-only session"

# Volatile functions SQL can call, made with the server (OID below 16384).
VOLATILE_CALLABLE = f"""
SELECT p.oid::regprocedure::text, l.lanname, l.lanpltrusted,
       p.oid < {FIRST_GENBKI_OID} AS from_build
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
 WHERE p.provolatile = 'v' AND p.oid < 16384
   AND p.prorettype NOT IN ('internal'::regtype, 'language_handler'::regtype,
                            'trigger'::regtype, 'event_trigger'::regtype)
   AND NOT ('internal'::regtype = ANY (p.proargtypes::oid[]))
 ORDER BY 1
"""


def present_signatures(server: Server) -> set[str]:
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT s FROM unnest(%s::text[]) s WHERE to_regprocedure(s) IS NOT NULL",
            [[review.signature for review in REVIEWED_FUNCTIONS]],
        ).fetchall()
    return {str(row[0]) for row in rows}


@pytest.fixture(scope="module")
def present(server: Server) -> Iterator[set[str]]:
    """EXECUTE on every reviewed function; yields the signatures this server has."""
    server.admin("CREATE SEQUENCE IF NOT EXISTS pysafe_probe_seq")
    server.admin("GRANT ALL ON SEQUENCE pysafe_probe_seq TO can_write")
    signatures = present_signatures(server)
    for signature in signatures:
        server.admin(f"GRANT EXECUTE ON FUNCTION {signature} TO can_write")
    yield signatures
    for signature in signatures:
        server.admin(f"REVOKE EXECUTE ON FUNCTION {signature} FROM can_write")


@pytest.fixture(scope="module")
def restricted_session(server: Server, present: set[str]) -> Iterator[psycopg.Connection]:
    with server.connect("reporting") as conn:
        yield conn


def skip_if_absent(server: Server, present: set[str], review: FunctionReview) -> None:
    if review.signature not in present:
        pytest.skip(f"{review.signature} does not exist in PostgreSQL {server.cluster.major}")


def test_every_volatile_builtin_is_reviewed(server: Server) -> None:
    """A new PostgreSQL version's volatile function fails here until it is reviewed."""
    reviewed = {review.signature for review in REVIEWED_FUNCTIONS}
    rows = server.admin(VOLATILE_CALLABLE)
    unreviewed = sorted({str(row[0]) for row in rows if row[3]} - reviewed)
    assert not unreviewed, (
        f"PostgreSQL {server.cluster.major} has volatile functions pysafe has not reviewed; "
        f"classify each in pysafe/policy/functions.py: {unreviewed}"
    )
    # The rest (initdb's, such as plpgsql_validator) must fall to the fmgr
    # hooks' rule: volatile C or untrusted-language functions are refused.
    uncovered = [row for row in rows if not row[3] and row[1] != "c" and row[2]]
    assert not uncovered, uncovered


def test_volatile_functions_made_by_initdb_are_refused(server: Server) -> None:
    server.assert_refused("reporting", "SELECT plpgsql_validator((SELECT NULL::oid))")


def test_no_signature_is_reviewed_twice() -> None:
    signatures = [review.signature for review in REVIEWED_FUNCTIONS]
    assert len(signatures) == len(set(signatures))


@pytest.mark.parametrize("review", WRITING_FUNCTIONS, ids=[r.signature for r in WRITING_FUNCTIONS])
def test_writing_function_refused(
    server: Server, present: set[str], review: FunctionReview
) -> None:
    skip_if_absent(server, present, review)
    server.assert_refused("reporting", review.probe, message=FUNCTIONS)
    if review.sample is None:
        return  # a NULL-argument probe only shows where pysafe refuses
    # Control: pysafe does not refuse it for an unrestricted role (it may fail
    # for its own reasons, such as a missing large object).
    with server.connect("writer") as conn:
        conn.autocommit = False
        refusal = attempt_on(conn, review.sample)
        conn.rollback()
    assert refusal is None or refusal.message != FUNCTIONS, refusal


@pytest.mark.parametrize("review", CLEARED_FUNCTIONS, ids=[r.signature for r in CLEARED_FUNCTIONS])
def test_cleared_function_allowed(
    server: Server,
    present: set[str],
    restricted_session: psycopg.Connection,
    review: FunctionReview,
) -> None:
    skip_if_absent(server, present, review)
    refusal = attempt_on(restricted_session, review.probe)
    # It may fail for its own reasons (a NULL argument, no such file), never
    # pysafe's; and the probe must have reached the function.
    assert refusal is None or refusal.message != FUNCTIONS, (review.probe, refusal)
    assert refusal is None or refusal.sqlstate != UNDEFINED_FUNCTION, (review.probe, refusal)


def in_from(probe: str) -> str:
    """The probe "SELECT f(...)" as "SELECT * FROM f(...)": the planner asks the
    fmgr hook whether a function in FROM may be inlined, built-ins included."""
    assert probe.startswith("SELECT ")
    return "SELECT * FROM " + probe.removeprefix("SELECT ")


@pytest.fixture(scope="module")
def set_returning(server: Server, present: set[str]) -> set[str]:
    rows = server.admin(
        "SELECT s FROM unnest(%s::text[]) s WHERE (to_regprocedure(s)::oid) IN "
        "(SELECT oid FROM pg_proc WHERE proretset)"
        % ("ARRAY[" + ",".join("'" + sig.replace("'", "''") + "'" for sig in present) + "]")
    )
    return {str(row[0]) for row in rows}


def test_cleared_set_returning_functions_run_in_from(
    set_returning: set[str], restricted_session: psycopg.Connection
) -> None:
    """One authority: the C-language rule does not overrule the review (pg_locks)."""
    probes = [
        in_from(review.probe)
        for review in CLEARED_FUNCTIONS
        if review.signature in set_returning and review.sample is None
    ]
    assert len(probes) > 10
    refused = []
    for probe in probes:
        refusal = attempt_on(restricted_session, probe)
        if refusal is not None and refusal.sqlstate in (READ_ONLY_SQLSTATE, UNDEFINED_FUNCTION):
            refused.append((probe, refusal))
    assert refused == []


@pytest.mark.parametrize("review", WRITING_FUNCTIONS, ids=[r.signature for r in WRITING_FUNCTIONS])
def test_writing_function_refused_in_from(
    server: Server, present: set[str], review: FunctionReview
) -> None:
    skip_if_absent(server, present, review)
    server.assert_refused("reporting", in_from(review.probe), message=FUNCTIONS)


def refused_file(server: Server) -> Path:
    return refused_builtins_path(find_pg_config(server.cluster.major, server.cluster.pg_config))


def test_refused_file_lists_every_uncleared_volatile_builtin(server: Server) -> None:
    listed = {
        line.split(" ", 1)[1]
        for line in refused_file(server).read_text().splitlines()
        if line and not line.startswith("#")
    }
    from_build = {str(row[0]) for row in server.admin(VOLATILE_CALLABLE) if row[3]}
    cleared = {review.signature for review in CLEARED_FUNCTIONS}
    writers = {review.signature for review in WRITING_FUNCTIONS}
    assert listed & from_build == from_build - cleared
    assert listed >= writers & from_build
    # Writers reviewed by effect although not volatile: listed all the same.
    assert listed - from_build == NOT_VOLATILE_WRITERS


def test_an_unreviewed_builtin_would_be_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: drop random() from the review and the installer refuses it."""
    cleared = [r.signature for r in CLEARED_FUNCTIONS if r.signature != "random()"]
    monkeypatch.setattr(function_review, "cleared_signatures", lambda: cleared)
    with server.connect() as conn:
        refused = {signature for _, signature in function_review.resolve_refused(conn)}
    assert "random()" in refused and "clock_timestamp()" not in refused


def test_function_review_lists_what_this_server_has(server: Server, present: set[str]) -> None:
    with server.connect("reporting") as conn:
        rows = conn.execute(
            "SELECT fn::text, verdict FROM pysafe.function_review() WHERE source = 'built-in'"
        ).fetchall()
    verdicts = {str(fn).replace(" ", ""): str(verdict) for fn, verdict in rows}
    expected = {
        review.signature.replace(" ", ""): "refused" if review in WRITING_FUNCTIONS else "allowed"
        for review in REVIEWED_FUNCTIONS
        if review.signature in present
    }
    assert verdicts == expected


def test_sequence_advances_refused_with_read_only_forcing_off(settings: Server) -> None:
    """Each layer alone: the function check stops nextval without read-only forcing."""
    settings.set_settings(force_read_only="off")
    settings.assert_refused(
        "reporting", "SELECT nextval('pysafe_probe_seq') FROM accounts", message=FUNCTIONS
    )


def test_reads_with_builtins_still_work(server: Server) -> None:
    server.assert_allowed(
        "reporting",
        "SELECT random(), now(), clock_timestamp(), gen_random_uuid(), pg_backend_pid()",
        "SELECT lo_get(oid) FROM pg_largeobject_metadata LIMIT 1",
        "SELECT set_config('application_name', 'report', false), pg_sleep(0)",
    )


def test_without_the_refused_file_every_volatile_builtin_is_refused(server: Server) -> None:
    """Fail closed: a lost file refuses volatile built-ins, and only those."""
    path = refused_file(server)
    hidden = path.with_name("refused_builtins-hidden-by-test")
    path.rename(hidden)
    try:
        with server.connect("reporting") as conn:  # a new backend reads the file afresh
            refusal = attempt_on(conn, "SELECT random()")
            assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
            assert refusal.message == FUNCTIONS
            assert attempt_on(conn, "SELECT now(), lower('X'), count(*) FROM accounts") is None
        with server.connect("writer") as conn:
            assert attempt_on(conn, "SELECT random()") is None
    finally:
        hidden.rename(path)
    server.assert_allowed("reporting", "SELECT random()")
