"""The reference MCP server for PostgreSQL (npm @modelcontextprotocol/server-postgres 0.6.2).

Its "query" tool runs ``BEGIN TRANSACTION READ ONLY`` and then the caller's
SQL as one simple-protocol query string, and rolls back.  A string that
commits first runs the rest outside that transaction, read-write: a known
way past the server's read-only promise.  Run as an unrestricted login, the
payloads below write (the control).  Run as a restricted login, pysafe
refuses every write they carry and the database does not change.

The server runs as a real node process, driven over stdio with JSON-RPC:
initialize, notifications/initialized, tools/list, tools/call, and the
resources it lists (one per table of the public schema).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.common import (
    CLIENT_DB,
    LOGINS,
    PYSAFE_WORDING,
    Login,
    client_url,
    missing,
)
from tests.support import Server

VERSION = "0.6.2"
PACKAGE = "@modelcontextprotocol/server-postgres"
DEFAULT_INSTALL = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "pysafe"
    / f"npm-server-postgres-{VERSION}"
    / "node_modules"
    / PACKAGE
    / "dist"
    / "index.js"
)

# name: (payload, what a write leaves behind, pysafe's refusal)
PAYLOADS = {
    "commit_then_insert": (
        "COMMIT; INSERT INTO public.mcp_target VALUES (1)",
        "SELECT count(*) = 1 FROM public.mcp_target WHERE x = 1",
        "cannot execute INSERT",
    ),
    "leading_comment": (
        "/* x */ COMMIT; INSERT INTO public.mcp_target VALUES (2)",
        "SELECT count(*) = 1 FROM public.mcp_target WHERE x = 2",
        "cannot execute INSERT",
    ),
    "multi_statement_drop": (
        "SELECT 1; COMMIT; DROP TABLE public.mcp_target",
        "SELECT to_regclass('public.mcp_target') IS NULL",
        "cannot execute DROP TABLE",
    ),
    "session_read_write": (
        "COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;"
        " INSERT INTO public.mcp_target VALUES (4)",
        "SELECT count(*) = 1 FROM public.mcp_target WHERE x = 4",
        "cannot execute INSERT",
    ),
    "do_block": (
        "COMMIT; DO $$BEGIN INSERT INTO public.mcp_target VALUES (5); END$$",
        "SELECT count(*) = 1 FROM public.mcp_target WHERE x = 5",
        "cannot execute INSERT",
    ),
}


class McpServer:
    """One server-postgres process, talked to over its stdin and stdout."""

    def __init__(self, program: str, url: str) -> None:
        node = shutil.which("node")
        if node is None:
            missing("node is not installed (.ci/setup installs it)")
        self.process = subprocess.Popen(
            [node, program, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.next_id = 0
        self.buffer = b""
        reply = self.request(
            "initialize",
            {
                "protocolVersion": "2024-11-05",
                "capabilities": {},
                "clientInfo": {"name": "pysafe-client-suite", "version": "1"},
            },
        )
        assert reply["result"]["serverInfo"]["name"] == "example-servers/postgres", reply
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        while True:
            reply = json.loads(self.read_line())
            if reply.get("id") == self.next_id:
                assert isinstance(reply, dict)
                return reply

    def read_line(self, timeout: float = 20) -> bytes:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise AssertionError(f"no reply from the MCP server: {self.stderr()}")
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the MCP server exited: {self.stderr()}")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def query(self, sql: str) -> dict[str, Any]:
        return self.request("tools/call", {"name": "query", "arguments": {"sql": sql}})

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def program() -> str:
    path = os.environ.get("PYSAFE_MCP_SERVER_POSTGRES") or str(DEFAULT_INSTALL)
    if not Path(path).is_file():
        missing(f"{PACKAGE} {VERSION} is not installed at {path} (.ci/setup installs it)")
    return path


@pytest.fixture(scope="module")
def mcp_servers(server: Server, clientdb: str) -> Iterator[dict[str, McpServer]]:
    """One running MCP server per login, for the module."""
    started: dict[str, McpServer] = {}
    try:
        for login in LOGINS:
            started[login.label] = McpServer(program(), client_url(server, login))
        yield started
    finally:
        for running in started.values():
            running.close()


@pytest.fixture
def target(server: Server, clientdb: str) -> Iterator[str]:
    """A fresh table for the payloads, owned by the logins' group."""
    server.admin(
        "DROP TABLE IF EXISTS public.mcp_target;"
        "CREATE TABLE public.mcp_target (x int);"
        "ALTER TABLE public.mcp_target OWNER TO client_group",
        CLIENT_DB,
    )
    yield "public.mcp_target"
    server.admin("DROP TABLE IF EXISTS public.mcp_target", CLIENT_DB)


def rows(reply: dict[str, Any]) -> list[dict[str, Any]]:
    assert "result" in reply, reply
    assert reply["result"]["isError"] is False, reply
    content = json.loads(reply["result"]["content"][0]["text"])
    assert isinstance(content, list)
    return content


def test_reads_through_the_mcp_server(
    server: Server, mcp_servers: dict[str, McpServer], login: Login, target: str
) -> None:
    mcp = mcp_servers[login.label]
    before = server.fingerprint(CLIENT_DB)
    tools = mcp.request("tools/list")["result"]["tools"]
    assert [tool["name"] for tool in tools] == ["query"]
    assert rows(mcp.query("SELECT count(*) AS n FROM shop.orders")) == [{"n": "400"}]
    totals = rows(mcp.query("SELECT * FROM shop.customer_totals ORDER BY id LIMIT 3"))
    assert [row["name"] for row in totals] == ["customer 1", "customer 2", "customer 3"]
    revenue = rows(mcp.query("SELECT sum(n)::int AS n FROM shop.monthly_revenue"))
    assert revenue == [{"n": 400}]
    profile = rows(mcp.query("SELECT profile->>'age' AS age FROM shop.customers WHERE id = 5"))
    assert profile == [{"age": "25"}]
    resources = mcp.request("resources/list")["result"]["resources"]
    names = {resource["name"] for resource in resources}
    assert '"documents" database schema' in names and '"mcp_target" database schema' in names
    uri = next(r["uri"] for r in resources if r["name"] == '"documents" database schema')
    columns = json.loads(
        mcp.request("resources/read", {"uri": uri})["result"]["contents"][0]["text"]
    )
    assert {"column_name": "title", "data_type": "text"} in columns
    # A plain write meets the server's own READ ONLY transaction (or pysafe first).
    reply = mcp.query(f"INSERT INTO {target} VALUES (0)")
    wording = PYSAFE_WORDING if login.restricted else "in a read-only transaction"
    assert reply["error"]["message"] == f"cannot execute INSERT {wording}", reply
    assert server.fingerprint(CLIENT_DB) == before


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_that_commit_first(
    server: Server, mcp_servers: dict[str, McpServer], login: Login, target: str, payload: str
) -> None:
    sql, written, refusal = PAYLOADS[payload]
    mcp = mcp_servers[login.label]
    before = server.fingerprint(CLIENT_DB)
    reply = mcp.query(sql)
    if login.restricted:
        assert "error" in reply, reply
        assert reply["error"]["message"] == f"{refusal} {PYSAFE_WORDING}", reply
        assert server.fingerprint(CLIENT_DB) == before, f"{sql} wrote through pysafe"
        assert server.admin(written, CLIENT_DB) == [(False,)]
    else:
        # The control: the payload escapes the MCP server's read-only transaction.
        assert server.admin(written, CLIENT_DB) == [(True,)], reply
    # The server and its pooled connections go on answering.
    assert rows(mcp.query("SELECT count(*) AS n FROM shop.customers")) == [{"n": "60"}]
