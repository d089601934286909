"""The function-call protocol message (libpq's PQfn), as real client libraries send it.

libpq's large-object functions do not send SQL: ``lo_creat``, ``lo_open``,
``lowrite`` and ``lo_import`` each send a FunctionCall message naming the
server function by OID.  Outside a transaction block that message starts a
transaction of its own, with no statement for the utility or executor hooks
to see, so only the function checks and read-only forcing at fmgr stand in
the way.  Large objects are the write to watch: a read-only transaction
alone does not stop ``lo_creat``.

Three roads, each as a restricted login and then as an unrestricted one:
libpq called directly (ctypes, autocommit, so the message starts its own
transaction), libpq's client-side ``lo_import`` of a file, and psycopg2's
``lobject``, which opens a transaction first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.support import Server

INV_READ_WRITE = 0x00020000 | 0x00040000
SIDE_EFFECTS = "cannot execute functions that may have side effects in a read-only session"
CONNECTION_OK = 0


class Libpq:
    """The few libpq calls these tests need, from the system's libpq."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("pq")
        if name is None:
            pytest.skip("no system libpq (libpq5) to call PQfn through")
        lib = ctypes.CDLL(name)
        lib.PQconnectdb.restype = ctypes.c_void_p
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQstatus.argtypes = [ctypes.c_void_p]
        lib.PQerrorMessage.restype = ctypes.c_char_p
        lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
        lib.PQfinish.argtypes = [ctypes.c_void_p]
        lib.lo_creat.restype = ctypes.c_uint
        lib.lo_creat.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.lo_import.restype = ctypes.c_uint
        lib.lo_import.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.PQexec.restype = ctypes.c_void_p
        lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.PQclear.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def connect(self, conninfo: str) -> int:
        conn = self.lib.PQconnectdb(conninfo.encode())
        assert self.lib.PQstatus(conn) == CONNECTION_OK, self.error(conn)
        return int(conn)

    def execute(self, conn: int, sql: str) -> None:
        """Run SQL whose outcome the caller reads from the connection afterwards."""
        self.lib.PQclear(self.lib.PQexec(conn, sql.encode()))

    def error(self, conn: int) -> str:
        return bytes(self.lib.PQerrorMessage(conn) or b"").decode(errors="replace")


@pytest.fixture(scope="module")
def libpq() -> Libpq:
    return Libpq()


@pytest.fixture
def upload(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "upload.txt"
    path.write_text("a file for a large object\n")
    yield path


def large_objects(server: Server) -> int:
    return int(str(server.admin("SELECT count(*) FROM pg_largeobject_metadata")[0][0]))


def call_libpq(libpq: Libpq, server: Server, user: str, upload: Path) -> list[tuple[int, str]]:
    """(oid, error) of lo_creat outside a transaction block, where the message starts
    its own transaction, and of lo_import inside one, as libpq requires."""
    conn = libpq.connect(server.cluster.dsn(user))
    try:
        created = libpq.lib.lo_creat(conn, INV_READ_WRITE)
        outcomes = [(int(created), libpq.error(conn))]
        libpq.execute(conn, "BEGIN")
        imported = libpq.lib.lo_import(conn, str(upload).encode())
        outcomes.append((int(imported), libpq.error(conn)))
        libpq.execute(conn, "COMMIT")
        return outcomes
    finally:
        libpq.lib.PQfinish(conn)


def test_libpq_large_object_calls_refused_for_a_restricted_login(
    server: Server, libpq: Libpq, upload: Path
) -> None:
    before = large_objects(server)
    outcomes = call_libpq(libpq, server, "reporting", upload)
    for oid, error in outcomes:
        assert oid == 0, "a large object was made through the function-call protocol"
        assert SIDE_EFFECTS in error, error
    assert large_objects(server) == before
    # Control: the same calls as an unrestricted login each make one.
    outcomes = call_libpq(libpq, server, "writer", upload)
    assert all(oid != 0 for oid, _ in outcomes), outcomes
    assert large_objects(server) == before + 2
    server.admin(" ".join(f"SELECT lo_unlink({oid});" for oid, _ in outcomes))


def test_psycopg2_lobject_refused_for_a_restricted_login(server: Server) -> None:
    before = large_objects(server)
    with psycopg2.connect(server.cluster.dsn("analyst")) as conn:
        with pytest.raises(psycopg2.Error) as refused:
            conn.lobject(0, "wb").write(b"through psycopg2")
        assert refused.value.pgcode in (None, "25006"), refused.value.pgcode
        assert SIDE_EFFECTS in str(refused.value)
    assert large_objects(server) == before
    with psycopg2.connect(server.cluster.dsn("writer")) as conn:
        made = conn.lobject(0, "wb")
        made.write(b"through psycopg2")
        oid = made.oid
        conn.commit()
    assert large_objects(server) == before + 1
    server.admin(f"SELECT lo_unlink({oid})")
