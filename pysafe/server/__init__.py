"""Entry points the PL/Python functions of the pysafe extension call inside the server.

Importing this package loads pglast's parser safely inside a backend: pglast
bundles libpg_query, which defines PostgreSQL's own symbol names (palloc,
raw_parser, ...).  Loaded the usual way, its internal calls would bind to the
server's functions of the same name and crash the backend, so the parser
module is loaded with RTLD_DEEPBIND, which makes it prefer its own symbols.
"""

import os
import sys


def _load_pglast_parser_with_own_symbols() -> None:
    if "pglast.parser" in sys.modules:
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import pglast.parser  # noqa: F401, PLC0415 - loaded for its side effect
    finally:
        sys.setdlopenflags(flags)


_load_pglast_parser_with_own_symbols()
