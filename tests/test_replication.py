"""A primary and a streaming standby made with pg_basebackup -R, as DBAs make them.

pysafe is installed on both (the standby's install places this host's part
and names the primary for the rest), roles are restricted through
pysafe.roles and pysafe.restrict(), both nodes refuse alike, and after the
standby is promoted every restriction made through pysafe.restrict() holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pysafe.install import STANDBY_NOTE, install
from pysafe.localcluster import LocalCluster
from tests.replication import make_standby, promote, wait_for_replay, wait_until
from tests.support import (
    READ_ONLY_SQLSTATE,
    RESTRICTED_ROLES_SETTING,
    Server,
    assert_without_python_marks,
    attempt_on,
    create_fixture_objects,
    run_cli,
)

# A restricted role's session refuses these on any node; PostgreSQL's own
# read-only standby allows them (they write no WAL), so only pysafe stops them.
PYSAFE_ONLY_REFUSALS = ("SELECT pg_advisory_lock(42)", "SELECT pg_cancel_backend(0)")
RESTRICTED_BY_FUNCTION = "tenant"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[LocalCluster, LocalCluster]]:
    primary = LocalCluster(settings={"autovacuum": "off"}).start()
    standby: LocalCluster | None = None
    try:
        install(primary.dsn(), primary.pg_config)
        primary.restart()
        server = Server(primary)
        create_fixture_objects(server)
        server.set_settings(roles=RESTRICTED_ROLES_SETTING)
        server.admin(f"CREATE ROLE {RESTRICTED_BY_FUNCTION} LOGIN IN ROLE can_write")
        server.admin(f"SELECT pysafe.restrict('{RESTRICTED_BY_FUNCTION}')")
        standby = make_standby(primary)
        wait_for_replay(primary, standby)
        yield primary, standby
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


def refusal(cluster: LocalCluster, user: str, statement: str) -> str | None:
    with cluster.connect(user) as conn:
        outcome = attempt_on(conn, statement)
    return None if outcome is None else f"{outcome.sqlstate} {outcome.message}"


def assert_restricted_on(cluster: LocalCluster, user: str) -> None:
    for statement in PYSAFE_ONLY_REFUSALS:
        outcome = refusal(cluster, user, statement)
        assert outcome is not None and outcome.startswith(READ_ONLY_SQLSTATE), (user, outcome)
        assert "read-only session" in outcome
    assert refusal(cluster, user, "SELECT count(*) FROM accounts") is None


def test_install_on_a_standby_places_the_host_part_and_names_the_primary(
    pair: tuple[LocalCluster, LocalCluster],
) -> None:
    _, standby = pair
    report = install(standby.dsn(), standby.pg_config)
    assert report.standby and STANDBY_NOTE in report.steps
    assert report.databases["postgres"] == "pysafe 0.2.0, replicated from the primary"
    assert any("shim built and installed" in step for step in report.steps)


def test_both_nodes_refuse_alike(pair: tuple[LocalCluster, LocalCluster]) -> None:
    for node in pair:
        for user in ("reporting", "analyst", RESTRICTED_BY_FUNCTION):
            assert_restricted_on(node, user)
        for statement in PYSAFE_ONLY_REFUSALS:  # control: pysafe, not the standby, refused
            assert refusal(node, "writer", statement) is None


def test_catalog_changes_on_a_standby_name_the_primary(
    pair: tuple[LocalCluster, LocalCluster],
) -> None:
    _, standby = pair
    for call in (
        "SELECT pysafe.restrict('writer')",
        "SELECT pysafe.unrestrict('tenant')",
        "SELECT pysafe.apply_role_defaults()",
    ):
        with standby.connect() as conn:
            refusal = attempt_on(conn, call)
        assert refusal is not None and refusal.sqlstate == READ_ONLY_SQLSTATE, refusal
        assert refusal.message is not None and "standby only replays" in refusal.message
        assert refusal.hint is not None and "Run it on the primary" in refusal.hint
        assert_without_python_marks(refusal)


def test_restrict_over_the_pair_acts_on_the_primary_and_verifies_the_standby(
    pair: tuple[LocalCluster, LocalCluster],
) -> None:
    primary, standby = pair
    primary_dsn, standby_dsn = primary.dsn(), standby.dsn()
    # The standby comes first in the list: the order must not matter.
    done = run_cli("restrict", "analyst_two", "--dsn", standby_dsn, "--dsn", primary_dsn)
    assert done.returncode == 1 and "does not exist" in done.stderr  # no such role yet
    with primary.connect() as conn:
        conn.execute("CREATE ROLE analyst_two LOGIN IN ROLE can_write")
    done = run_cli("restrict", "analyst_two", "--dsn", standby_dsn, "--dsn", primary_dsn)
    assert done.returncode == 0, done.stderr
    assert "standby: analyst_two is restricted here" in done.stdout
    assert_restricted_on(standby, "analyst_two")
    done = run_cli("unrestrict", "analyst_two", "--dsn", standby_dsn, "--dsn", primary_dsn)
    assert done.returncode == 0, done.stderr
    assert "standby: analyst_two is not restricted here" in done.stdout
    assert refusal(standby, "analyst_two", PYSAFE_ONLY_REFUSALS[0]) is None


def fleet_status(*clusters: LocalCluster) -> tuple[int, dict[str, Any]]:
    args = [arg for cluster in clusters for arg in ("--dsn", cluster.dsn())]
    done = run_cli("status", *args, "--json")
    return done.returncode, json.loads(done.stdout)


def test_status_over_the_pair_shows_each_node_and_any_drift(
    pair: tuple[LocalCluster, LocalCluster],
) -> None:
    primary, standby = pair
    code, report = fleet_status(primary, standby)
    assert code == 0 and report["format"] == 1 and report["drift"] == [], report["drift"]
    first, second = (server["result"] for server in report["servers"])
    assert (first["node"], second["node"]) == ("primary", "standby")
    assert second["replication_source"] == f"127.0.0.1:{primary.port}"
    assert first["restricted_roles"] == second["restricted_roles"]
    # pysafe.roles lives in each node's postgresql.auto.conf: changed on the
    # primary alone, it drifts, and so does the set of restricted roles.
    with primary.connect() as conn:
        conn.execute(f"ALTER SYSTEM SET pysafe.roles = '{RESTRICTED_ROLES_SETTING}, writer'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        wait_until(primary, "SELECT current_setting('pysafe.roles') LIKE '%writer'", True)
        code, report = fleet_status(primary, standby)
        assert code == 1
        drifted = {line.split(":")[0] for line in report["drift"] if line.startswith("drift")}
        assert drifted == {"drift in pysafe.roles", "drift in restricted_roles"}, report["drift"]
        assert any("ALTER SYSTEM SET pysafe.roles = " in line for line in report["drift"])
    finally:
        with primary.connect() as conn:
            conn.execute(f"ALTER SYSTEM SET pysafe.roles = '{RESTRICTED_ROLES_SETTING}'")
            conn.execute("SELECT pg_reload_conf()")
        wait_until(primary, "SELECT current_setting('pysafe.roles') LIKE '%writer'", False)
    assert fleet_status(primary, standby)[0] == 0


def test_promotion_keeps_every_restriction_made_with_restrict(
    pair: tuple[LocalCluster, LocalCluster],
) -> None:
    """Last: the standby becomes a primary, and writes become possible there."""
    primary, standby = pair
    wait_for_replay(primary, standby)
    promote(standby)
    for user in ("reporting", RESTRICTED_BY_FUNCTION):
        assert_restricted_on(standby, user)
        outcome = refusal(standby, user, "INSERT INTO accounts VALUES (500, 1)")
        assert outcome == f"{READ_ONLY_SQLSTATE} cannot execute INSERT in a read-only session"
    # Control: the promoted server takes writes from an unrestricted role.
    assert refusal(standby, "writer", "INSERT INTO accounts VALUES (500, 1)") is None


@pytest.fixture
def publisher() -> Iterator[LocalCluster]:
    cluster = LocalCluster(settings={"wal_level": "logical"}).start()
    try:
        with cluster.connect() as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
            conn.execute("INSERT INTO items VALUES (1)")
            conn.execute("CREATE PUBLICATION shop FOR TABLE items")
        yield cluster
    finally:
        cluster.stop()


def rows_arrive(subscriber: LocalCluster, count: int) -> None:
    wait_until(subscriber, "SELECT count(*)::int FROM items", count)


def test_logical_replication_into_a_pysafe_subscriber(
    pair: tuple[LocalCluster, LocalCluster], publisher: LocalCluster
) -> None:
    """The subscriber is the module's primary.  A superuser's subscription
    applies as before.  One owned by a restricted role (PostgreSQL 16 and
    later let a non-superuser own one; run_as_owner, so PostgreSQL itself
    does not switch to the table owner) applies too: the apply worker is a
    background worker that writes below the executor, where pysafe's checks
    are not.  pysafe.audit() reports such a subscription as high."""
    subscriber, _ = pair
    source = f"host=127.0.0.1 port={publisher.port} dbname=postgres user=postgres"
    with subscriber.connect() as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
        conn.execute(f"CREATE SUBSCRIPTION shop_sub CONNECTION '{source}' PUBLICATION shop")
    try:
        rows_arrive(subscriber, 1)
        with publisher.connect() as conn:
            conn.execute("INSERT INTO items VALUES (2)")
        rows_arrive(subscriber, 2)
        if subscriber.major < 16:
            return  # only superusers may own a subscription before 16
        with subscriber.connect() as conn:
            conn.execute("CREATE ROLE sub_owner LOGIN IN ROLE pg_create_subscription")
            conn.execute("GRANT ALL ON items TO sub_owner")
            conn.execute("GRANT CREATE ON DATABASE postgres TO sub_owner")
            conn.execute("SELECT pysafe.restrict('sub_owner')")
            conn.execute(
                "ALTER SUBSCRIPTION shop_sub SET (password_required = false, run_as_owner = true)"
            )
            conn.execute("ALTER SUBSCRIPTION shop_sub OWNER TO sub_owner")
            findings = conn.execute(
                "SELECT severity, finding FROM pysafe.audit() WHERE object = %s",
                ["subscription shop_sub"],
            ).fetchall()
        assert findings and findings[0][0] == "high", findings
        with publisher.connect() as conn:
            conn.execute("INSERT INTO items VALUES (3)")
        rows_arrive(subscriber, 3)
    finally:
        with subscriber.connect() as conn:
            conn.execute("DROP SUBSCRIPTION IF EXISTS shop_sub")
            conn.execute("DROP TABLE IF EXISTS items")
            if subscriber.major >= 16:
                conn.execute("DROP OWNED BY sub_owner")
                conn.execute("DROP ROLE IF EXISTS sub_owner")
