"""psql: every describe meta-command, echoed with -E; its protocol features; writes.

The sweep runs in one psql session for the restricted and one for the
unrestricted login.  Each meta-command is marked in the output, so a refusal
is traced to the command (and, with -E, to the queries psql sent).  The
restricted login must get no refusal, and the same output and the same
errors (PostgreSQL's own, for privileges neither login has) as the
unrestricted login with the same grants.
"""

from __future__ import annotations

import difflib
import re
import subprocess
from pathlib import Path

import pytest

from tests.clients.common import (
    CLIENT_DB,
    READ_ONLY,
    READER,
    WRITER,
    Login,
    client_dsn,
)
from tests.support import Server, run_psql

# Each command plainly, and with + (and S for system objects) where psql has it.
META_COMMANDS = [
    r"\d",
    r"\d+",
    r"\dS",
    r"\d shop.orders",
    r"\d+ shop.orders",
    r"\d+ shop.orders_2024",
    r"\d+ shop.customers",
    r"\d+ shop.tenant_notes",
    r"\d+ shop.customer_totals",
    r"\d+ shop.monthly_revenue",
    r"\d+ shop.invoice_number",
    r"\d+ shop.customers_name_trgm",
    r"\d+ shop.archived_orders",
    r"\d+ public.documents",
    r"\da",
    r"\daS",
    r"\dA",
    r"\dA+",
    r"\dAc",
    r"\dAc+ btree",
    r"\dAf",
    r"\dAf+ gin",
    r"\dAo gin",
    r"\dAo+ btree integer_ops",
    r"\dAp gin",
    r"\dAp+ btree integer_ops",
    r"\db",
    r"\db+",
    r"\dc",
    r"\dc+",
    r"\dC",
    r"\dC+",
    r"\dd",
    r"\ddp",
    r"\dD",
    r"\dD+",
    r"\des",
    r"\des+",
    r"\det",
    r"\det+",
    r"\deu",
    r"\deu+",
    r"\dew",
    r"\dew+",
    r"\dE",
    r"\dE+",
    r"\df",
    r"\df+",
    r"\dfa",
    r"\dfn",
    r"\dfp",
    r"\dft",
    r"\dfw",
    r"\df+ shop.*",
    r"\dF",
    r"\dF+",
    r"\dFd",
    r"\dFd+",
    r"\dFp",
    r"\dFp+",
    r"\dFt",
    r"\dFt+",
    r"\dg",
    r"\dg+",
    r"\di",
    r"\di+",
    r"\diS",
    r"\dl",
    r"\dl+",
    r"\dL",
    r"\dL+",
    r"\dm",
    r"\dm+",
    r"\dn",
    r"\dn+",
    r"\do",
    r"\do+ shop.*",
    r"\dO",
    r"\dO+",
    r"\dp",
    r"\dp shop.*",
    r"\dP",
    r"\dP+",
    r"\dPi+",
    r"\dPt+",
    r"\dPn+",
    r"\drds",
    r"\dRp",
    r"\dRp+",
    r"\dRs",
    r"\dRs+",
    r"\ds",
    r"\ds+",
    r"\dt",
    r"\dt+",
    r"\dtS+",
    r"\dt *.*",
    r"\dT",
    r"\dT+",
    r"\du",
    r"\du+",
    r"\dv",
    r"\dv+",
    r"\dvS",
    r"\dx",
    r"\dx+",
    r"\dX",
    r"\dy",
    r"\dy+",
    r"\l",
    r"\l+",
    r"\lo_list",
    r"\lo_list+",
    r"\sf shop.customer_count",
    r"\sf+ shop.customer_count",
    r"\sv shop.customer_totals",
    r"\sv+ shop.paid_orders",
    r"\z",
    r"\z shop.*",
]
SINCE = {r"\dconfig": 15, r"\dconfig+ *read_only*": 15, r"\drg": 16, r"\drg+": 16}
# Settings a restricted login has on: the one place the outputs may differ.
READ_ONLY_SETTINGS = re.compile(r"^\s*(default_)?transaction_read_only\s*\|")
MARK = "#### meta-command "


def meta_commands(major: int) -> list[str]:
    return META_COMMANDS + [command for command, since in SINCE.items() if major >= since]


def psql_script(
    server: Server, login: Login, script: Path, text: str
) -> subprocess.CompletedProcess[str]:
    """Write TEXT to SCRIPT and run it with psql -E as LOGIN, errors with their SQLSTATE."""
    script.write_text(text)
    return run_psql(
        server.cluster,
        client_dsn(server, login),
        *("-E", "-v", "VERBOSITY=verbose", "-P", "pager=off", "-f", str(script)),
    )


def sweep(server: Server, login: Login, folder: Path) -> subprocess.CompletedProcess[str]:
    lines = ["SET search_path TO shop, public;"]
    for command in meta_commands(server.cluster.major):
        quoted = command.replace("\\", "\\\\")  # psql reads backslash escapes in quotes
        lines += [f"\\echo '{MARK}{quoted}'", command]
    # A large object read through the client-side interface (lo_open, loread).
    lines += [
        "SELECT body AS doc FROM public.documents WHERE id = 1 \\gset",
        f"\\lo_export :doc {folder}/document-{login.label}",
    ]
    return psql_script(server, login, folder / f"sweep-{login.label}.psql", "\n".join(lines) + "\n")


def normalized(command: str, output: str) -> list[str]:
    """\\dconfig without the read-only settings (and so without column widths or row count)."""
    lines = output.splitlines()
    if not command.startswith(r"\dconfig"):
        return lines
    return [
        "|".join(cell.strip() for cell in line.split("|"))
        for line in lines
        if "|" in line and not READ_ONLY_SETTINGS.match(line)
    ]


def sections(output: str) -> dict[str, str]:
    parts = output.split(MARK)[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts}


@pytest.fixture(scope="module")
def sweeps(
    server: Server, clientdb: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    folder = tmp_path_factory.mktemp("psql")
    before = server.fingerprint(CLIENT_DB)
    results = {login.label: (sweep(server, login, folder), folder) for login in (READER, WRITER)}
    assert server.fingerprint(CLIENT_DB) == before, "the psql sweep wrote something"
    return results


def test_every_meta_command_succeeds_for_the_restricted_login(
    server: Server, sweeps: dict[str, tuple[subprocess.CompletedProcess[str], Path]]
) -> None:
    result, folder = sweeps["restricted"]
    assert result.returncode == 0, result.stderr
    # Every error psql prints goes to stderr (with its SQLSTATE: VERBOSITY=verbose).
    assert READ_ONLY not in result.stderr and "read-only" not in result.stderr, result.stderr
    # Some commands need privileges neither login has (sizes of pg_global for \db+,
    # pg_subscription for \dRs+): PostgreSQL refuses those alike for both.
    writer = sweeps["unrestricted"][0].stderr.replace("-unrestricted.psql", "-restricted.psql")
    assert result.stderr == writer
    ran = sections(result.stdout)
    assert list(ran) == meta_commands(server.cluster.major)
    # -E echoes the catalog queries each command sends ("********* QUERY **********"
    # up to 15, "/******** QUERY *********/" from 16).
    echoed = re.compile(r"\*{8,} QUERY \*{8,}")
    assert not [c for c in ran if c.startswith(r"\d") and not echoed.search(ran[c])]
    assert (folder / "document-restricted").read_text().startswith("large object text")


def test_meta_commands_show_the_restricted_login_what_they_show_the_writer(
    sweeps: dict[str, tuple[subprocess.CompletedProcess[str], Path]],
) -> None:
    restricted = sections(sweeps["restricted"][0].stdout)
    unrestricted = sections(sweeps["unrestricted"][0].stdout)
    assert restricted.keys() == unrestricted.keys()
    differ = [
        command
        for command in restricted
        if normalized(command, restricted[command]) != normalized(command, unrestricted[command])
    ]
    assert differ == [], "\n".join(
        difflib.unified_diff(
            unrestricted[differ[0]].splitlines(), restricted[differ[0]].splitlines(), lineterm=""
        )
    )
    if r"\dconfig+ *read_only*" in restricted:
        for output, value in ((restricted, "on"), (unrestricted, "off")):
            shown = output[r"\dconfig+ *read_only*"].splitlines()
            values = [
                line.split("|")[1].strip() for line in shown if READ_ONLY_SETTINGS.match(line)
            ]
            assert values == [value, value], shown


# Each write, ended as psql needs it, and what psql prints when it succeeds.
WRITES = {
    "INSERT INTO public.scratch VALUES (2, 'psql');": "INSERT 0 1",
    "UPDATE shop.orders SET status = 'paid' WHERE id = 1;": "UPDATE 1",
    "CREATE TABLE public.psql_made (x int);": "CREATE TABLE",
    "SELECT nextval('shop.invoice_number');": "nextval",
    "\\lo_import {file}": "lo_import ",
    "\\copy public.scratch FROM program 'echo 3,copied' WITH (FORMAT csv)": "COPY 1",
}


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.split()[0].strip("\\"))
def test_writes_through_psql(server: Server, login: Login, write: str, tmp_path: Path) -> None:
    """In a transaction psql rolls back: refused (25006) for the restricted login only."""
    before = server.fingerprint(CLIENT_DB)
    (tmp_path / "upload").write_text("a file for a large object")
    script = f"\\set ON_ERROR_STOP 1\nBEGIN;\n{write.format(file=tmp_path / 'upload')}\nROLLBACK;\n"
    result = psql_script(server, login, tmp_path / "write.psql", script)
    if login.restricted:
        assert result.returncode == 3, result
        assert "ERROR:  25006:" in result.stderr, result.stderr
        assert server.fingerprint(CLIENT_DB) == before
    else:
        assert result.returncode == 0, result.stderr
        assert WRITES[write] in result.stdout, result.stdout


# psql's own protocol features: describe, gexec, crosstab, extended-protocol
# binds (16+), named statements and pipelines (18+), \watch with a count (16+).
EXTRAS = [
    (0, r"SELECT 1 AS a, 'x'::text AS b \gdesc"),
    (0, r"SELECT format('SELECT count(*) FROM %s', 'shop.customers') \gexec"),
    (
        0,
        r"SELECT status, extract(year FROM ordered_on)::int AS y, count(*)"
        r" FROM shop.orders GROUP BY 1, 2 ORDER BY 1, 2 \crosstabview",
    ),
    (16, r"SELECT $1::int + 1 AS n \bind 41 \g"),
    (16, r"SELECT count(*) FROM shop.orders_2025 \watch c=2 i=0.01"),
    (18, r"SELECT $1::int * 2 AS n \parse doubled"),
    (18, r"\bind_named doubled 21 \g"),
    (18, r"\close_prepared doubled"),
    (18, r"\startpipeline"),
    (18, r"SELECT count(*) FROM shop.orders \bind \sendpipeline"),
    (18, r"SELECT count(*) FROM shop.customer_totals \bind \sendpipeline"),
    (18, r"\syncpipeline"),
    (18, r"\endpipeline"),
]


def test_psql_protocol_features(server: Server, login: Login, tmp_path: Path) -> None:
    before = server.fingerprint(CLIENT_DB)
    major = server.cluster.major
    lines = ["\\set ON_ERROR_STOP 1", *(line for since, line in EXTRAS if major >= since)]
    result = psql_script(server, login, tmp_path / "extras.psql", "\n".join(lines) + "\n")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "| 2024 | 2025 | 2026" in result.stdout and " paid " in result.stdout
    if major >= 16:
        assert result.stdout.count(" 42\n") == (2 if major >= 18 else 1), result.stdout
    if login.restricted:
        assert server.fingerprint(CLIENT_DB) == before
