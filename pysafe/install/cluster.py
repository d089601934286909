"""Cluster-wide steps over SQL: the preload entry, settings and the extension per database."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pysafe.install.files import SHIM_NAME

PRELOAD_SETTING = "shared_preload_libraries"


def split_library_list(value: str) -> list[str]:
    """Entries of a library list setting, as PostgreSQL reads them."""
    return [item.strip().strip('"') for item in value.split(",") if item.strip()]


def configured_preload(conn: psycopg.Connection) -> list[str]:
    """shared_preload_libraries as the next start will see it (ALTER SYSTEM included)."""
    row = conn.execute(
        "SELECT setting FROM pg_file_settings WHERE name = %s AND error IS NULL "
        "ORDER BY seqno DESC LIMIT 1",
        [PRELOAD_SETTING],
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT current_setting(%s)", [PRELOAD_SETTING]).fetchone()
    assert row is not None
    return split_library_list(str(row[0]))


def set_preload(conn: psycopg.Connection, libraries: list[str]) -> None:
    if libraries:
        values = sql.SQL(", ").join(sql.Literal(lib) for lib in libraries)
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_preload_libraries = {}").format(values))
    else:
        conn.execute("ALTER SYSTEM RESET shared_preload_libraries")


def add_shim_to_preload(conn: psycopg.Connection) -> bool:
    """Append the shim, keeping the entries already there; True if it changed."""
    libraries = configured_preload(conn)
    if SHIM_NAME in libraries:
        return False
    set_preload(conn, [*libraries, SHIM_NAME])
    return True


def remove_shim_from_preload(conn: psycopg.Connection) -> bool:
    libraries = configured_preload(conn)
    if SHIM_NAME not in libraries:
        return False
    set_preload(conn, [lib for lib in libraries if lib != SHIM_NAME])
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


def shim_running(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT %s = ANY (string_to_array(replace(current_setting(%s), ' ', ''), ','))",
        [SHIM_NAME, PRELOAD_SETTING],
    ).fetchone()
    return bool(row and row[0])


def target_databases(conn: psycopg.Connection) -> list[str]:
    """Every database that accepts connections; template1 so new databases inherit pysafe."""
    return [
        str(row[0])
        for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname"
        )
    ]


def connect_to(dsn: str, dbname: str) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(dsn, dbname=dbname), autocommit=True)


def extension_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pysafe'").fetchone()
    return None if row is None else str(row[0])


def ensure_extension(conn: psycopg.Connection, version: str) -> str:
    """Create or update the extension in this database; returns what it did."""
    installed = extension_version(conn)
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
    return "dropped"
