"""One reading of the names in pysafe.roles (issue 17, item 5).

The shim decides who is restricted from the names pysafe.roles lists, read
by SplitIdentifierString (installer/role_list.c); pysafe.status(),
pysafe.sessions() and pysafe.audit() must name exactly those roles.  With
the shim they read the list through the shim's own reader; in Python-only
mode through pysafe_internal.read_role_list(), which must read every list as
the shim does: unquoted names fold ASCII letters only (not lower(), which
folds É), quoted names keep their case and their commas, and a name the
server would cut to 63 bytes (where depends on the database's encoding,
which a connection lacks while it authenticates) makes the list unreadable.
The comparisons run real sessions of each role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from pysafe.localcluster import LocalCluster
from tests.support import (
    READ_ONLY_SQLSTATE,
    Server,
    attempt_on,
    install_python_only,
)

LOGIN_EVENTS = 17

LONG_ROLE = "é" * 31  # 62 bytes: as long as a role name gets in UTF8
SHORTER_ROLE = "é" * 30
TOO_LONG = "é" * 35  # 70 bytes: names no role; the server would cut it

# Hostile on purpose: non-ASCII and mixed case unquoted, quoted names with a
# comma, a space and a doubled quote, a tab, whitespace around names, a name
# as long as names get.
ROLES_LIST = (
    f' Émile, "Quoted" ,MiXed,"a,b",  "with space"\t,\tTabbed_Name,"say ""hi""", {LONG_ROLE} '
)

# Each role, and whether the server's reading of ROLES_LIST restricts it.
EXPECTED = {
    "Émile": True,  # unquoted: É is not an ASCII letter, so it stays
    "émile": False,  # what lower() would have made of Émile
    "Quoted": True,
    "quoted": False,
    "mixed": True,  # unquoted MiXed folds to mixed
    "MiXed": False,
    "a,b": True,  # one quoted name
    "a": False,
    "b": False,
    "with space": True,
    "tabbed_name": True,
    'say "hi"': True,
    LONG_ROLE: True,
    SHORTER_ROLE: False,
}

# Write probe: refused (25006) in restricted sessions, allowed in others.
WRITE = "CREATE TEMPORARY TABLE role_names_probe (x int)"

# Lists the shim's reader and read_role_list() must read alike, valid or not.
HOSTILE_LISTS = [
    "",
    "   ",
    "a",
    "A",
    "Émile",
    "ÉMILE, émile",
    '"Émile"',
    "İstanbul, ǅemal, ΣΊΣΥΦΟΣ, ß",
    "MiXed,mIxEd",
    '"MiXed"',
    '"a,b"',
    '"a,b",c',
    '" padded "',
    '""',
    '"",a',
    '""""',
    '"say ""hi"""',
    'a"b',
    '"a"b',
    '"a" b',
    "a b",
    "a,,b",
    "a,",
    ",a",
    " , ",
    '"unclosed',
    "\ta\t,\nb\r,\fc",
    "a\vb",
    "\va\v",
    "x.y, 1abc, a-b, $z",
    TOO_LONG,
    f'"{TOO_LONG}"',
    f"a, {TOO_LONG}",
    LONG_ROLE,
    "É" * 40,
    "a" * 70,
    "A" * 70 + "," + "b" * 64,
    "x" * 62 + "é",
    "x" * 61 + "é",
    "x" * 63,
    "x" * 64,
    '"' + "x" * 63 + '"',
    '"' + "x" * 64 + '"',
]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_roles(conn: psycopg.Connection) -> None:
    for name in EXPECTED:
        conn.execute(f"DROP ROLE IF EXISTS {quote_ident(name)}")
        # A finding of audit() for every restricted role among these.
        conn.execute(f"CREATE ROLE {quote_ident(name)} LOGIN IN ROLE pg_signal_backend")


def drop_roles(conn: psycopg.Connection) -> None:
    for name in EXPECTED:
        conn.execute(f"DROP ROLE IF EXISTS {quote_ident(name)}")


def write_refused(conn: psycopg.Connection) -> object:
    """True when WRITE is refused with 25006, False when it runs, else the error."""
    refusal = attempt_on(conn, WRITE)
    if refusal is None:
        return False
    return True if refusal.sqlstate == READ_ONLY_SQLSTATE else refusal


def readings(
    connect: Callable[[str], psycopg.Connection], admin: psycopg.Connection
) -> dict[str, dict[str, object]]:
    """For each role, in a session of its own: what the session itself says
    and does, and what status(), sessions() and audit() report for it."""
    audited = {
        str(finding)
        for (finding,) in admin.execute(
            "SELECT finding FROM pysafe.audit() "
            "WHERE finding LIKE '% is a member of pg_signal_backend'"
        ).fetchall()
    }
    result: dict[str, dict[str, object]] = {}
    for name in EXPECTED:
        with connect(name) as conn:
            [(own, pid)] = conn.execute(
                "SELECT pysafe.session_is_restricted(), pg_backend_pid()"
            ).fetchall()
            [(live, detail)] = conn.execute(
                "SELECT live, detail FROM pysafe.status() "
                "WHERE protection = 'this session restricted'"
            ).fetchall()
            [(listed_ok,)] = conn.execute(
                "SELECT live FROM pysafe.status() "
                "WHERE protection = 'pysafe.roles names existing roles'"
            ).fetchall()
            [(session_row, through)] = admin.execute(
                "SELECT restricted, restricted_through FROM pysafe.sessions() WHERE pid = %s", [pid]
            ).fetchall()
            refused = write_refused(conn)
        result[name] = {
            "session_is_restricted": own,
            "write refused": refused,
            "status": live,
            "status path": str(detail).startswith(f"session user {name}, listed through {name}"),
            "sessions": session_row,
            "sessions path": through is not None and str(through).startswith(name),
            "audit": f"restricted role {name} is a member of pg_signal_backend" in audited,
            "names match roles": listed_ok,
        }
    return result


def assert_one_reading(found: dict[str, dict[str, object]]) -> None:
    for name, expected in EXPECTED.items():
        facts = found[name]
        assert facts["names match roles"] is True, (name, facts)
        del facts["names match roles"]
        assert set(facts.values()) == {expected}, (name, sorted(facts.items()))


# -- full mode: the shared cluster, shim loaded ------------------------------


@pytest.fixture
def listed(settings: Server) -> Iterator[Server]:
    with settings.connect() as conn:
        create_roles(conn)
    settings.set_settings(roles=ROLES_LIST)
    try:
        yield settings
    finally:
        settings.reset_settings()
        with settings.connect() as conn:
            drop_roles(conn)


def test_status_sessions_and_audit_name_the_roles_the_shim_restricts(listed: Server) -> None:
    with listed.connect() as admin:
        found = readings(listed.connect, admin)
    assert_one_reading(found)


def test_the_sql_reading_equals_the_shims_on_hostile_lists(server: Server) -> None:
    with server.connect() as conn:
        for value in HOSTILE_LISTS:
            [(shim, sql)] = conn.execute(
                "SELECT pysafe_internal.split_role_list(%(v)s), "
                "pysafe_internal.read_role_list(%(v)s)",
                {"v": value},
            ).fetchall()
            assert sql == shim, value


def test_the_check_hook_refuses_what_the_reading_cannot_read(settings: Server) -> None:
    with settings.connect() as conn:
        # ALTER SYSTEM refuses newlines in any value, before the check hook.
        for value in (v for v in HOSTILE_LISTS if "\n" not in v):
            [(readable,)] = conn.execute(
                "SELECT pysafe_internal.split_role_list(%s) IS NOT NULL", [value]
            ).fetchall()
            try:
                conn.execute(f"ALTER SYSTEM SET pysafe.roles = {_literal(value)}")
                accepted = True
            except psycopg.errors.InvalidParameterValue:
                accepted = False
            assert accepted == readable, value


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- Python-only mode: a cluster of its own, no shim ---------------------------


@pytest.fixture(scope="module")
def python_only() -> Iterator[LocalCluster]:
    cluster = LocalCluster(settings={"autovacuum": "off"}).start()
    try:
        install_python_only(cluster)
        with cluster.connect() as conn:
            create_roles(conn)
            conn.execute(f"ALTER SYSTEM SET pysafe.roles = {_literal(ROLES_LIST)}")
            conn.execute("SELECT pg_reload_conf()")
            if cluster.major < LOGIN_EVENTS:
                conn.execute("SELECT pysafe.apply_role_defaults()")
        yield cluster
    finally:
        cluster.stop()


def test_python_only_mode_reads_names_as_the_shim_does(python_only: LocalCluster) -> None:
    with python_only.connect() as admin:
        assert admin.execute("SELECT pysafe_internal.shim_loaded()").fetchone() == (False,)
        found = readings(python_only.connect, admin)
    assert_one_reading(found)


def test_an_unreadable_list_restricts_every_role_in_python_only_mode(
    python_only: LocalCluster,
) -> None:
    """The shim's check hook refuses a value it cannot read, and would restrict
    every role with one; Python-only mode's placeholder takes any value into
    the files, and its reading then restricts every role too, not nobody."""
    with python_only.connect() as admin:
        admin.execute("ALTER SYSTEM SET pysafe.roles = 'Émile,,quoted'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            for name in ("a", "émile", "Émile"):
                with python_only.connect(name) as conn:
                    [(own, pid)] = conn.execute(
                        "SELECT pysafe.session_is_restricted(), pg_backend_pid()"
                    ).fetchall()
                    [(through,)] = admin.execute(
                        "SELECT restricted_through FROM pysafe.sessions() WHERE pid = %s", [pid]
                    ).fetchall()
                assert own is True, name
                assert through == f"{name} (pysafe.roles cannot be read: every role is restricted)"
            assert admin.execute("SELECT pysafe.session_is_restricted()").fetchone() == (False,)
        finally:
            admin.execute(f"ALTER SYSTEM SET pysafe.roles = {_literal(ROLES_LIST)}")
            admin.execute("SELECT pg_reload_conf()")
