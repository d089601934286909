"""Cluster-wide steps over SQL: the preload entry, settings and the extension per database."""

from __future__ import annotations

import psycopg
from psycopg import sql

from pysafe.install.connection import connect

SHARED_PRELOAD = "shared_preload_libraries"
SESSION_PRELOAD = "session_preload_libraries"


def split_library_list(value: str) -> list[str]:
    """Entries of a library list setting, as PostgreSQL reads them."""
    return [item.strip().strip('"') for item in value.split(",") if item.strip()]


def configured_libraries(conn: psycopg.Connection, setting: str) -> list[str]:
    """A library list as the next start (or reload) will see it, ALTER SYSTEM included."""
    row = conn.execute(
        # A change that waits for a restart is marked "could not be applied".
        "SELECT setting FROM pg_file_settings WHERE name = %s "
        "AND (error IS NULL OR error = 'setting could not be applied') "
        "ORDER BY seqno DESC LIMIT 1",
        [setting],
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT current_setting(%s)", [setting]).fetchone()
    assert row is not None
    return split_library_list(str(row[0]))


def set_libraries(conn: psycopg.Connection, setting: str, libraries: list[str]) -> None:
    name = sql.Identifier(setting)
    if libraries:
        values = sql.SQL(", ").join(sql.Literal(lib) for lib in libraries)
        conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(name, values))
    else:
        conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(name))


def add_library(conn: psycopg.Connection, setting: str, library: str) -> bool:
    """Append a library, keeping the entries already there; True if it changed."""
    libraries = configured_libraries(conn, setting)
    if library in libraries:
        return False
    set_libraries(conn, setting, [*libraries, library])
    return True


def remove_library(conn: psycopg.Connection, setting: str, library: str) -> bool:
    libraries = configured_libraries(conn, setting)
    if library not in libraries:
        return False
    set_libraries(conn, setting, [lib for lib in libraries if lib != library])
    return True


def seed_roles_setting(conn: psycopg.Connection) -> None:
    """Python-only mode: put pysafe.roles in postgresql.auto.conf, keeping its value.

    Before PostgreSQL 17, ALTER SYSTEM refuses a custom setting no loaded
    module defines, unless the session has a placeholder for it; once the
    setting is in a config file, every session has that placeholder, so
    later ALTER SYSTEM SET pysafe.roles works as in full mode.
    """
    row = conn.execute(
        "SELECT setting FROM pg_file_settings WHERE name = 'pysafe.roles' "
        "ORDER BY seqno DESC LIMIT 1"
    ).fetchone()
    value = "" if row is None else str(row[0])
    conn.execute("SELECT set_config('pysafe.roles', %s, false)", [value])
    conn.execute(sql.SQL("ALTER SYSTEM SET pysafe.roles = {}").format(sql.Literal(value)))


# The role pysafe.restrict() grants; installer/pysafe.c has the same name.
RESTRICTED_GROUP = "pysafe_restricted"


def ensure_restricted_group(conn: psycopg.Connection) -> bool:
    """Create the role the shim always counts as listed; True if it was missing."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [RESTRICTED_GROUP]).fetchone():
        return False
    group = sql.Identifier(RESTRICTED_GROUP)
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
    conn.execute(
        sql.SQL("COMMENT ON ROLE {} IS {}").format(
            group,
            sql.Literal(
                "pysafe: members are restricted like roles in pysafe.roles; "
                "use pysafe.restrict() / pysafe.unrestrict()"
            ),
        )
    )
    return True


def drop_restricted_group(conn: psycopg.Connection) -> bool:
    """Drop it (its memberships go with it); True if it existed."""
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [RESTRICTED_GROUP]).fetchone():
        return False
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(RESTRICTED_GROUP)))
    return True


def reset_pysafe_settings(conn: psycopg.Connection) -> list[str]:
    """ALTER SYSTEM RESET every pysafe.* setting; returns their names."""
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT DISTINCT name FROM pg_file_settings WHERE name LIKE 'pysafe.%%'"
        )
    ]
    for name in names:
        conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(*name.split("."))))
    return names


def target_databases(conn: psycopg.Connection) -> list[str]:
    """Every database that accepts connections; template1 so new databases inherit pysafe."""
    return [
        str(row[0])
        for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname"
        )
    ]


def connect_to(dsn: str, dbname: str) -> psycopg.Connection:
    return connect(dsn, dbname=dbname)


def extension_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pysafe'").fetchone()
    return None if row is None else str(row[0])


def extension_mode_is(conn: psycopg.Connection, shim: bool) -> bool:
    """Were the extension's shim functions made for this mode (C with the shim)?"""
    row = conn.execute(
        "SELECT l.lanname = 'c' FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
        "WHERE p.oid = 'pysafe.session_is_restricted()'::regprocedure"
    ).fetchone()
    return row is not None and bool(row[0]) == shim


def ensure_extension(conn: psycopg.Connection, version: str, shim: bool = True) -> str:
    """Create or update the extension in this database; returns what it did."""
    installed = extension_version(conn)
    if installed is not None and not extension_mode_is(conn, shim):
        conn.execute("DROP EXTENSION pysafe")
        conn.execute("CREATE EXTENSION pysafe CASCADE")
        return "re-created for " + ("full mode" if shim else "Python-only mode")
    if installed is None:
        conn.execute("CREATE EXTENSION pysafe CASCADE")
        return "created"
    if installed != version:
        conn.execute(sql.SQL("ALTER EXTENSION pysafe UPDATE TO {}").format(sql.Literal(version)))
        return f"updated from {installed}"
    return "already present"


def drop_extension(conn: psycopg.Connection) -> str:
    if extension_version(conn) is None:
        return "absent"
    conn.execute("DROP EXTENSION pysafe")
    # The control file's schema is not a member (so pg_dump writes it): drop
    # it too, unless someone put objects of their own in it.
    try:
        conn.execute("DROP SCHEMA IF EXISTS pysafe")
    except psycopg.errors.DependentObjectsStillExist:
        return "dropped; schema pysafe kept: it holds objects pysafe did not make"
    return "dropped"


def replicated_extension(conn: psycopg.Connection, version: str) -> str:
    """On a standby: what replication brought of the extension in this database."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pysafe'").fetchone()
    if row is None:
        return "missing: run python -m pysafe install on the primary"
    if str(row[0]) != version:
        return f"pysafe {row[0]} from the primary; run install on the primary for {version}"
    return f"pysafe {version}, replicated from the primary"
