"""Facts about the target server that install and uninstall need, read over SQL."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pysafe.install.errors import InstallError

MINIMUM_SERVER_VERSION = 140000


@dataclass(frozen=True)
class ServerFacts:
    version_num: int
    is_superuser: bool
    plpython_available: bool
    shim_loaded: bool
    in_recovery: bool  # a standby: its catalogs come from the primary by replication
    loaded_shim_build: str | None = None  # SHOW pysafe.shim_build; None before 0.2.0

    @property
    def major(self) -> int:
        return self.version_num // 10000


def read_server_facts(conn: psycopg.Connection) -> ServerFacts:
    row = conn.execute(
        """
        SELECT current_setting('server_version_num')::int,
               current_setting('is_superuser') = 'on',
               EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'plpython3u'),
               EXISTS (SELECT 1 FROM pg_settings
                        WHERE name = 'pysafe.roles' AND context = 'superuser'),
               pg_is_in_recovery(),
               current_setting('pysafe.shim_build', true)
        """
    ).fetchone()
    assert row is not None
    return ServerFacts(*row)


def require_installable(facts: ServerFacts) -> None:
    """Refuse, naming the fix, when install cannot succeed on this server."""
    if not facts.is_superuser:
        raise InstallError(
            "pysafe install must connect as a superuser; pass --dsn with user=postgres "
            "(or another superuser)."
        )
    if facts.version_num < MINIMUM_SERVER_VERSION:
        raise InstallError(
            f"pysafe needs PostgreSQL 14 or newer; this server is {facts.version_num}."
        )
    if not facts.plpython_available:
        raise InstallError(
            "PL/Python (plpython3u) is not available on the server; on Debian install "
            f"the package postgresql-plpython3-{facts.major}, then run install again."
        )


def server_python_version(conn: psycopg.Connection, in_recovery: bool) -> tuple[int, int]:
    """The (major, minor) of the interpreter PL/Python uses; changes nothing.

    On a primary: a temporary function in a transaction rolled back.  A
    standby can create nothing, so there a DO block reports it, in the
    plpython3u the primary's install created and replication brought.
    """
    if in_recovery:
        return standby_python_version(conn)
    with conn.transaction(force_rollback=True):
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
        conn.execute(
            "CREATE FUNCTION pg_temp.pysafe_python_version() RETURNS text "
            "LANGUAGE plpython3u AS $$import sys; return '%d.%d' % sys.version_info[:2]$$"
        )
        row = conn.execute("SELECT pg_temp.pysafe_python_version()").fetchone()
    assert row is not None
    major, minor = str(row[0]).split(".")
    return int(major), int(minor)


def standby_python_version(conn: psycopg.Connection) -> tuple[int, int]:
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'plpython3u'").fetchone() is None:
        raise InstallError(
            "this server is a standby and plpython3u is not in its catalogs yet: run "
            "python -m pysafe install on the primary first, then here (the extension and "
            "roles reach the standby by replication; install places this host's files)."
        )
    reported: list[str] = []
    conn.add_notice_handler(lambda notice: reported.append(notice.message_primary or ""))
    conn.execute(
        "DO LANGUAGE plpython3u $$import sys; plpy.notice('%d.%d' % sys.version_info[:2])$$"
    )
    major, minor = reported[-1].split(".")
    return int(major), int(minor)
