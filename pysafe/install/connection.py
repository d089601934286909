"""Connections for the command line: as root, over a local socket, by peer authentication.

install must run as root (it writes into the PostgreSQL installation) and
needs a superuser connection.  Debian's clusters let the postgres OS user in
over the local socket by peer authentication, which checks the OS user of
the connecting process.  So when we are root and the connection goes over a
Unix socket, we connect with the effective user switched to the OS user of
the same name as the database user (postgres by default), and switch back
at once: files are still written as root.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# The superuser Debian's clusters (and initdb run as postgres) create.
SERVICE_USER = "postgres"
# What install and uninstall connect to without --dsn: the local server, as
# the postgres OS user; libpq's environment (PGPORT ...) fills in the rest.
LOCAL_DSN = f"host=/var/run/postgresql user={SERVICE_USER} dbname=postgres"


def over_local_socket(params: dict[str, Any]) -> bool:
    """True if libpq will connect over a Unix socket (host unset, or a folder)."""
    if params.get("hostaddr") or os.environ.get("PGHOSTADDR"):
        return False
    hosts = str(params.get("host") or os.environ.get("PGHOST") or "")
    return all(host == "" or host.startswith("/") for host in hosts.split(","))


def peer_account(params: dict[str, Any]) -> pwd.struct_passwd | None:
    """The OS account to connect as, when we are root on a local socket; else None."""
    if os.geteuid() != 0 or not over_local_socket(params):
        return None
    user = str(params.get("user") or os.environ.get("PGUSER") or SERVICE_USER)
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return None
    return None if account.pw_uid == 0 else account


@contextmanager
def effective_user(account: pwd.struct_passwd) -> Iterator[None]:
    """Run the block with the effective uid and gid of ``account``, then root again."""
    os.setegid(account.pw_gid)
    try:
        os.seteuid(account.pw_uid)
        try:
            yield
        finally:
            os.seteuid(0)
    finally:
        os.setegid(0)


def connect(dsn: str, **params: str) -> psycopg.Connection:
    """An autocommit connection to ``dsn`` (with ``params`` overriding its values).

    As root over a local socket, the connection is made as the OS user named
    like the database user, so peer authentication lets it in.
    """
    conninfo = make_conninfo(dsn, **params)
    account = peer_account(conninfo_to_dict(conninfo))
    if account is None:
        return psycopg.connect(conninfo, autocommit=True)
    conninfo = make_conninfo(conninfo, user=account.pw_name)
    with effective_user(account):
        return psycopg.connect(conninfo, autocommit=True)
