"""pgcli as each login: its command line with -c, and its completion queries.

pgcli runs without a terminal when given -c (SQL or backslash commands,
answered by pgspecial's own catalog queries); -y answers its destructive
statement prompt.  It prints errors with the query results and exits 0
either way, so the output is what is checked.  Its completion refresher's
catalog queries (PGExecute) run as well, and must give the restricted
login what they give the unrestricted one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pgcli.pgexecute import PGExecute

from tests.clients.common import (
    CLIENT_DB,
    PYSAFE_WORDING,
    READER,
    WRITER,
    Login,
    client_dsn,
    client_program,
)
from tests.support import Server

READS = [
    "SELECT count(*) AS n FROM shop.orders",
    "SELECT name, attributes, profile FROM shop.customers WHERE id = 7",
    r"\dt shop.*",
    r"\d shop.customers",
    r"\dv shop.*",
    r"\dm shop.*",
    r"\df shop.*",
    r"\di shop.*",
    r"\dT shop.*",
    r"\dn",
    r"\du",
    r"\dx",
    r"\l",
    r"\sf shop.customer_count",
]
# Each write, and pysafe's refusal of it.
WRITES = {
    "INSERT INTO public.scratch VALUES (40, 'pgcli')": "cannot execute INSERT",
    "UPDATE shop.customers SET email = email WHERE id = 1": "cannot execute UPDATE",
    "DELETE FROM public.scratch": "cannot execute DELETE",
    "DROP TABLE public.scratch": "cannot execute DROP TABLE",
}


def pgcli(server: Server, login: Login, home: Path, *commands: str) -> str:
    config = home / "pgclirc"
    config.write_text("[main]\non_error = RESUME\n")  # go on after an error, as psql does
    arguments = [client_program("pgcli"), "--pgclirc", str(config), "--less-chatty", "-y"]
    arguments += ["--row-limit", "0"]
    for command in commands:
        arguments += ["-c", command]
    result = subprocess.run(
        [*arguments, client_dsn(server, login)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={"HOME": str(home), "XDG_CONFIG_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def untimed(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if not line.startswith("Time: "))


def test_pgcli_reads_and_writes(server: Server, login: Login, tmp_path: Path) -> None:
    before = server.fingerprint(CLIENT_DB)
    output = untimed(pgcli(server, login, tmp_path, *READS))
    assert "| 400 |" in output and "customer 7" in output
    assert "customers" in output and "customer_totals" in output and "hstore" in output
    assert PYSAFE_WORDING not in output, output
    # pgcli prints errors among the results: compare with the unrestricted login's.
    if login != WRITER:
        assert output == untimed(pgcli(server, WRITER, tmp_path, *READS))
    # Each write in a transaction of its own, rolled back.  One -c: pgcli stops
    # at the first failed -c, but with on_error = RESUME goes on within one.
    script = "".join(f"BEGIN; {write}; ROLLBACK;\n" for write in WRITES)
    output = pgcli(server, login, tmp_path, script)
    for write, refusal in WRITES.items():
        if login.restricted:
            assert output.count(f"{refusal} {PYSAFE_WORDING}") == 1, (write, output)
        else:
            assert "read-only" not in output, output
    if not login.restricted:
        assert "INSERT 0 1" in output and "UPDATE 1" in output and "DROP TABLE" in output
    assert server.fingerprint(CLIENT_DB) == before  # every write was refused or rolled back


def completion_metadata(server: Server, login: Login) -> dict[str, Any]:
    executor = PGExecute(dsn=client_dsn(server, login))
    try:
        return {
            "search_path": executor.search_path(),
            "schemata": executor.schemata(),
            "tables": sorted(executor.tables()),
            "views": sorted(executor.views()),
            "table_columns": sorted(executor.table_columns()),
            "view_columns": sorted(executor.view_columns()),
            "databases": executor.databases(),
            "foreign_keys": sorted(map(str, executor.foreignkeys())),
            "functions": sorted(map(str, executor.functions())),
            "datatypes": sorted(executor.datatypes()),
            "view_definition": executor.view_definition("shop.customer_totals"),
            "function_definition": executor.function_definition("shop.customer_count"),
        }
    finally:
        executor.conn.close()


@pytest.mark.usefixtures("clientdb")
def test_pgcli_completion_queries(server: Server) -> None:
    before = server.fingerprint(CLIENT_DB)
    restricted = completion_metadata(server, READER)
    assert ("shop", "orders") in restricted["tables"]
    assert ("shop", "monthly_revenue") in restricted["views"]
    assert any("customer_count" in function for function in restricted["functions"])
    assert server.fingerprint(CLIENT_DB) == before
    assert restricted == completion_metadata(server, WRITER)
