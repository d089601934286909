"""The client suite's database and logins, made once for the folder on the shared cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.common import (
    CLIENT_DB,
    DROP_ROLES_SQL,
    LOGINS,
    ROLES_SQL,
    SCHEMA_SQL,
    Login,
)
from tests.support import FINGERPRINT_FUNCTION, Server


@pytest.fixture(scope="package")
def clientdb(server: Server) -> Iterator[str]:
    """clientdb with its schema, rows and logins; all dropped again afterwards."""
    server.admin(ROLES_SQL)
    try:
        server.admin(f"CREATE DATABASE {CLIENT_DB}")
        with server.connect(dbname=CLIENT_DB) as conn:
            conn.execute(SCHEMA_SQL)
            conn.execute(FINGERPRINT_FUNCTION)
        # The premise: pysafe restricts the first login only, so a test that only
        # reads as it shows what a restricted session can do.
        for login in LOGINS:
            with server.connect(login.name, CLIENT_DB) as conn:
                row = conn.execute("SELECT pysafe.session_is_restricted()").fetchone()
            assert row == (login.restricted,), f"{login.name}: restricted is {row}"
        yield CLIENT_DB
    finally:
        server.admin(f"DROP DATABASE IF EXISTS {CLIENT_DB} WITH (FORCE)")
        server.admin("DROP OWNED BY client_group, client_reader, client_writer, client_app")
        server.admin(DROP_ROLES_SQL)


@pytest.fixture(params=LOGINS, ids=lambda login: login.label)
def login(request: pytest.FixtureRequest, clientdb: str) -> Login:
    """Each client runs unchanged as the restricted, the unrestricted and the superuser login."""
    assert isinstance(request.param, Login)
    return request.param
