"""The cleared volatile built-ins, written where the shim reads them.

The shim allows a restricted session a volatile built-in function only if
its OID is in this file (pysafe/policy/functions.py says why).  Built-in
OIDs are fixed when PostgreSQL is built, the same in every database and in
every cluster of one installation, so one file beside the server-side Python
serves the whole cluster, databases made later from template0 included.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from pysafe.install.files import ServerPaths, replace_file
from pysafe.policy.functions import cleared_signatures

FILE_NAME = "cleared_builtins"
# Built-ins below this OID come from the build (FirstGenbkiObjectId); the shim
# checks only those, so only those go in the file.
FIRST_GENBKI_OID = 10000


def cleared_builtins_path(paths: ServerPaths) -> Path:
    return paths.python_dir.parent / FILE_NAME


def resolve_cleared(conn: psycopg.Connection) -> list[tuple[int, str]]:
    """(OID, signature) of each cleared function this server has, by OID."""
    rows = conn.execute(
        "SELECT to_regprocedure(s)::oid, s FROM unnest(%s::text[]) AS s"
        " WHERE to_regprocedure(s) IS NOT NULL",
        [cleared_signatures()],
    ).fetchall()
    return sorted((int(oid), str(sig)) for oid, sig in rows if int(oid) < FIRST_GENBKI_OID)


def render(cleared: list[tuple[int, str]], server_version: str) -> str:
    lines = [
        "# Volatile built-in functions pysafe allows restricted sessions to call,",
        f"# for PostgreSQL {server_version}; written by python -m pysafe install",
        "# from pysafe/policy/functions.py.  One OID per line, then its signature.",
        *(f"{oid} {signature}" for oid, signature in cleared),
    ]
    return "\n".join(lines) + "\n"


def place_cleared_builtins(paths: ServerPaths, conn: psycopg.Connection) -> Path:
    """Write the file for this server; returns where."""
    version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    target = cleared_builtins_path(paths)
    replace_file(target, render(resolve_cleared(conn), version))
    return target
