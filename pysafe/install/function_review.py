"""The reviewed function classification, written where the shim reads it.

pysafe/policy/functions.py clears some volatile built-in functions for
restricted sessions.  The installer lists every other volatile built-in
that SQL can call on this server (the writers, and any the review has not
seen, so a newer PostgreSQL's additions are refused) with its OID, plus the
writers the review lists that are not volatile (txid_current()), and the
shim refuses exactly those: one binary search per function, no catalog
lookup.  Built-in OIDs and volatility are fixed when PostgreSQL is built,
the same in every database and in every cluster of one installation, so one
file beside the server-side Python serves the whole cluster, databases made
later from template0 included.

The shim also judges functions by the code they run: an internal-language
function another name declares runs the built-in its prosrc names, so the
file lists every built-in that shares an entry point with a refused one too,
whatever its volatility, and the shim's lookup of that entry point
(fmgr_internal_function) finds a listed OID.

The cleared extension functions (pysafe/policy/extension_functions.py) go in
a second file as "library symbol" lines, the refused ones in a third: those
do not depend on the server, so the files are the review itself, in the
form the shim reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import psycopg

from pysafe.install.files import ServerPaths, replace_file
from pysafe.policy.extension_functions import cleared_c_symbols, refused_c_symbols
from pysafe.policy.functions import cleared_signatures, writing_signatures

FILE_NAME = "refused_builtins"
CLEARED_C_FILE_NAME = "cleared_c_functions"
REFUSED_C_FILE_NAME = "refused_c_functions"
# Built-ins below this OID come from the build (FirstGenbkiObjectId); the shim
# checks only those, so only those go in the file.
FIRST_GENBKI_OID = 10000

# Volatile built-ins SQL can call: not taking or making "internal", not
# handlers or trigger functions, which only PostgreSQL's machinery calls.
VOLATILE_CALLABLE_BUILTINS = f"""
SELECT p.oid, p.oid::regprocedure::text
  FROM pg_catalog.pg_proc p
 WHERE p.provolatile = 'v' AND p.oid < {FIRST_GENBKI_OID}
   AND p.prorettype NOT IN ('internal'::regtype, 'language_handler'::regtype,
                            'trigger'::regtype, 'event_trigger'::regtype)
   AND NOT ('internal'::regtype = ANY (p.proargtypes::oid[]))
 ORDER BY p.oid
"""


# Built-ins whose entry point (prosrc) is that of one of the given OIDs.
SAME_ENTRY_POINT = f"""
SELECT p.oid, p.oid::regprocedure::text
  FROM pg_catalog.pg_proc p
 WHERE p.oid < {FIRST_GENBKI_OID} AND p.prolang = 12  -- internal
   AND p.prosrc IN (SELECT r.prosrc FROM pg_catalog.pg_proc r
                     WHERE r.oid = ANY (%s::oid[]) AND r.prolang = 12)
"""


def refused_builtins_path(paths: ServerPaths) -> Path:
    return paths.python_dir.parent / FILE_NAME


def cleared_c_functions_path(paths: ServerPaths) -> Path:
    return paths.python_dir.parent / CLEARED_C_FILE_NAME


def present_functions(conn: psycopg.Connection, signatures: list[str]) -> dict[int, str]:
    """OID -> signature of those of ``signatures`` this server has."""
    rows = conn.execute(
        "SELECT to_regprocedure(s)::oid, s FROM unnest(%s::text[]) AS s"
        " WHERE to_regprocedure(s) IS NOT NULL",
        [signatures],
    )
    return {int(oid): str(signature) for oid, signature in rows}


def resolve_refused(conn: psycopg.Connection) -> list[tuple[int, str]]:
    """(OID, signature), by OID, of each volatile built-in the review does not
    clear, and of each writer the review lists whatever its volatility."""
    cleared = present_functions(conn, cleared_signatures())
    refused = {
        int(oid): str(signature)
        for oid, signature in conn.execute(VOLATILE_CALLABLE_BUILTINS).fetchall()
        if int(oid) not in cleared
    }
    refused.update(present_functions(conn, writing_signatures()))
    siblings = conn.execute(SAME_ENTRY_POINT, [sorted(refused)]).fetchall()
    refused.update((int(oid), str(signature)) for oid, signature in siblings)
    return sorted(refused.items())


def render(refused: list[tuple[int, str]], server_version: str) -> str:
    lines = [
        "# Volatile built-in functions pysafe refuses restricted sessions: the writers",
        "# of pysafe/policy/functions.py and any it has not reviewed.  For PostgreSQL",
        f"# {server_version}; written by python -m pysafe install.  OID, then signature.",
        *(f"{oid} {signature}" for oid, signature in refused),
    ]
    return "\n".join(lines) + "\n"


def place_refused_builtins(paths: ServerPaths, conn: psycopg.Connection) -> Path:
    """Write the file for this server; returns where."""
    version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    target = refused_builtins_path(paths)
    replace_file(target, render(resolve_refused(conn), version))
    return target


def render_symbol_file(header: tuple[str, ...], symbols: Iterable[tuple[str, str]]) -> str:
    """A file of "library symbol" lines the shim reads, after its comment lines."""
    lines = [*header, *(f"{library} {symbol}" for library, symbol in symbols)]
    return "\n".join(lines) + "\n"


CLEARED_C_HEADER = (
    "# Volatile C functions of extensions that pysafe clears for restricted sessions,",
    "# as library and C symbol (pysafe/policy/extension_functions.py).  Written by",
    "# python -m pysafe install; every other volatile C function is refused.",
)


def render_cleared_c_functions() -> str:
    return render_symbol_file(CLEARED_C_HEADER, cleared_c_symbols())


def refused_c_functions_path(paths: ServerPaths) -> Path:
    return paths.python_dir.parent / REFUSED_C_FILE_NAME


REFUSED_C_HEADER = (
    "# C functions of extensions that pysafe refuses restricted sessions whatever their",
    "# declared volatility, as library and C symbol (pysafe/policy/extension_functions.py).",
    "# Written by python -m pysafe install.",
)


def render_refused_c_functions() -> str:
    return render_symbol_file(REFUSED_C_HEADER, refused_c_symbols())


def place_refused_c_functions(paths: ServerPaths) -> Path:
    """Write the refused extension functions; returns where."""
    target = refused_c_functions_path(paths)
    replace_file(target, render_refused_c_functions())
    return target


def place_cleared_c_functions(paths: ServerPaths) -> Path:
    """Write the cleared extension functions; returns where."""
    target = cleared_c_functions_path(paths)
    replace_file(target, render_cleared_c_functions())
    return target
