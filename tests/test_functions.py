"""Built-in functions that write: the reviewed classification, entry by entry.

Built-ins never reach the fmgr hooks; the shim refuses the ones listed in
pysafe/policy/functions.py (stored in pysafe.blocked_functions at CREATE
EXTENSION) when the executor announces them.  The restricted role is granted
EXECUTE on each, so the refusal is pysafe's and not an ACL's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pysafe.policy.functions import WRITING_FUNCTIONS, FunctionRule
from tests.support import Server, attempt_on

FUNCTIONS = "cannot execute functions that may have side effects in a read-only session"


@pytest.fixture(scope="module")
def probes(server: Server) -> Iterator[set[str]]:
    """Grants for every listed function; yields the signatures this server has."""
    server.admin("CREATE SEQUENCE IF NOT EXISTS pysafe_probe_seq")
    server.admin("GRANT ALL ON SEQUENCE pysafe_probe_seq TO can_write")
    present = {str(row[0]) for row in server.admin("SELECT fn::text FROM pysafe.blocked_functions")}
    for signature in present:
        server.admin(f"GRANT EXECUTE ON FUNCTION {signature} TO can_write")
    yield present
    for signature in present:
        server.admin(f"REVOKE EXECUTE ON FUNCTION {signature} FROM can_write")


def normalized(signature: str) -> str:
    return signature.replace(" ", "")


@pytest.mark.parametrize("rule", WRITING_FUNCTIONS, ids=[r.signature for r in WRITING_FUNCTIONS])
def test_listed_function_refused_for_restricted_role(
    server: Server, probes: set[str], rule: FunctionRule
) -> None:
    if normalized(rule.signature) not in {normalized(p) for p in probes}:
        pytest.skip(f"{rule.signature} does not exist in PostgreSQL {server.cluster.major}")
    server.assert_refused("reporting", rule.sample, message=FUNCTIONS)
    # Control: pysafe does not refuse it for an unrestricted role (it may fail
    # for its own reasons, such as a missing large object).
    with server.connect("writer") as conn:
        conn.autocommit = False
        refusal = attempt_on(conn, rule.sample)
        conn.rollback()
    assert refusal is None or refusal.message != FUNCTIONS, refusal


def test_the_table_holds_the_classification(server: Server, probes: set[str]) -> None:
    expected = set()
    for rule in WRITING_FUNCTIONS:
        row = server.admin(f"SELECT to_regprocedure('{rule.signature}')::text")[0]
        if row[0] is not None:
            expected.add(str(row[0]))
    assert probes == expected
    # Every group is represented on this version.
    effects = {
        str(r[0]) for r in server.admin("SELECT DISTINCT effect FROM pysafe.blocked_functions")
    }
    assert effects == {rule.effect for rule in WRITING_FUNCTIONS}


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
    )
