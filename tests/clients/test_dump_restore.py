"""pg_dump, pg_restore and pg_dumpall run as each login; restores go into fresh databases.

pg_dump opens a REPEATABLE READ, READ ONLY transaction, takes ACCESS SHARE
locks, reads the catalogs, sequences (pg_get_sequence_data() on 18) and
large objects (lo_open for reading, loread), and COPYs every table TO
STDOUT; in parallel (-j 2) its workers import the leader's snapshot.  The
restricted login must be able to do all of it, and the restore (as the
superuser) must give back what that login could see.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.clients.common import (
    CLIENT_DB,
    READER,
    WRITER,
    Login,
    client_dsn,
    row_counts,
)
from tests.support import Server

FORMATS = {
    "plain": ["-Fp"],
    "custom": ["-Fc"],
    "directory": ["-Fd", "-j", "2"],
}

LARGE_OBJECT_SQL = "SELECT md5(lo_get(body)) FROM public.documents WHERE id = 1"
SEQUENCES_SQL = """
SELECT format('%I.%I', schemaname, sequencename), last_value
FROM pg_sequences WHERE schemaname IN ('shop', 'public') ORDER BY 1
"""


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("dump_format", FORMATS)
def test_dump_and_restore_round_trip(
    server: Server, login: Login, dump_format: str, tmp_path: Path
) -> None:
    bindir = server.cluster.bindir
    before = server.fingerprint(CLIENT_DB)
    target = tmp_path / f"dump.{dump_format}"
    # Row-level security applies to non-owners: dump what the login may see.
    dump = run(
        [
            str(bindir / "pg_dump"),
            "-d",
            client_dsn(server, login),
            "--enable-row-security",
            *FORMATS[dump_format],
            "-f",
            str(target),
        ]
    )
    assert dump.returncode == 0, dump.stderr
    assert "ERROR" not in dump.stderr, dump.stderr
    assert server.fingerprint(CLIENT_DB) == before, "pg_dump wrote something"

    restored = f"restored_{login.label}_{dump_format}"
    server.admin(f"DROP DATABASE IF EXISTS {restored}")
    server.admin(f"CREATE DATABASE {restored} TEMPLATE template0")
    try:
        superuser_dsn = server.cluster.dsn("postgres", restored)
        if dump_format == "plain":
            command = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
            command += ["-d", superuser_dsn, "-f", str(target)]
        else:
            command = [str(bindir / "pg_restore"), "--exit-on-error", "-d", superuser_dsn]
            command += ["-j", "2", str(target)] if dump_format == "directory" else [str(target)]
        restore = run(command)
        assert restore.returncode == 0, restore.stderr

        expected = row_counts(server, login)
        assert expected["shop.orders"] == 400 and expected["shop.customers"] == 60
        # The restricted and the unrestricted login see their own notes and the shared ones.
        assert expected["shop.tenant_notes"] == (12 if login.superuser else 6)
        assert row_counts(server, "postgres", restored) == expected
        for query in (LARGE_OBJECT_SQL, SEQUENCES_SQL):
            assert server.admin(query, restored) == server.admin(query, CLIENT_DB), query
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {restored} WITH (FORCE)")


def test_dump_as_restricted_matches_unrestricted(server: Server, clientdb: str) -> None:
    """Same grants, same schema: the restricted login's dump equals the writer's.

    The only data that differs is what row-level security shows each
    (tenant_notes), so that table's rows are left out.
    """
    pg_dump = str(server.cluster.bindir / "pg_dump")
    # Plain dumps carry a random psql \restrict key unless one is given.
    help_text = run([pg_dump, "--help"]).stdout
    fixed_key = ["--restrict-key=clients"] if "--restrict-key" in help_text else []
    outputs = []
    for login in (READER, WRITER):
        result = run(
            [
                pg_dump,
                "-d",
                client_dsn(server, login),
                "--enable-row-security",
                "--exclude-table-data=shop.tenant_notes",
                *fixed_key,
            ]
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]


def test_dumpall_globals_only(server: Server, login: Login) -> None:
    """Roles (pg_roles without passwords, as non-superusers must), tablespaces, settings."""
    before = server.fingerprint(CLIENT_DB)
    command = [str(server.cluster.bindir / "pg_dumpall"), "-d", client_dsn(server, login)]
    command += ["--globals-only", "--no-role-passwords"]
    result = run(command)
    assert result.returncode == 0, result.stderr
    assert "CREATE ROLE client_reader;" in result.stdout
    assert "GRANT client_group TO client_reader" in result.stdout
    assert server.fingerprint(CLIENT_DB) == before
