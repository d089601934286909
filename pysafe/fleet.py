"""One command, many servers: per-server results, errors that name the fix, one exit code."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from pysafe.install.errors import InstallError


class CliError(Exception):
    """Bad input to the command line itself; the message says what to do."""


@dataclass
class Outcome:
    """What a command did on one server: data for --json, lines for people."""

    data: Any
    lines: list[str] = field(default_factory=list)
    # The command ran but found what it was asked to fail on (check --fail-on-refusal).
    failing: bool = False


@dataclass
class ServerResult:
    server: str
    ok: bool
    outcome: Outcome | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.ok and self.outcome is not None:
            return {"server": self.server, "ok": True, "result": self.outcome.data}
        return {"server": self.server, "ok": False, "error": self.error}


def read_dsns(dsns: Sequence[str] | None, dsn_file: Path | None) -> list[str]:
    """--dsn values, then one DSN per line of --dsn-file (lines starting with # are comments)."""
    found = list(dsns or ())
    if dsn_file is not None:
        try:
            text = dsn_file.read_text()
        except OSError as error:
            raise CliError(f"cannot read --dsn-file {dsn_file}: {error.strerror}") from error
        for line in text.splitlines():
            dsn = line.strip()
            if dsn and not dsn.startswith("#"):
                found.append(dsn)
    if not found:
        raise CliError("no server given: pass --dsn 'host=... user=...' or --dsn-file FILE")
    return found


def server_label(dsn: str) -> str:
    """host:port/database of a DSN, for reports (never the password)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        raise CliError(f"not a libpq connection string: {dsn!r} ({error})") from error
    host = parts.get("host") or "local socket"
    port = parts.get("port") or os.environ.get("PGPORT") or "5432"
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or 'postgres'}"


def explain(error: Exception) -> str:
    """An error as one message that names the fix."""
    if isinstance(error, psycopg.OperationalError) and error.sqlstate is None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
        return (
            f"cannot connect: {first}; check the DSN, that the server is running, and that "
            "pg_hba.conf lets this client in"
        )
    if isinstance(error, (errors.UndefinedFunction, errors.InvalidSchemaName)):
        return (
            "pysafe is not installed in this database "
            f"({error.diag.message_primary}); run python -m pysafe install"
        )
    if isinstance(error, psycopg.Error):
        message = error.diag.message_primary or str(error).strip()
        hint = error.diag.message_hint
        return f"{message} (hint: {hint})" if hint else message
    return str(error)


# The version of the --json shape: {"format", "ok", "servers": [...], "drift": [...]}.
JSON_FORMAT = 1

# What status compares across a fleet: every node should agree on these.
FLEET_FACTS = ("settings", "restricted_roles", "versions")


def fleet_drift(results: list[ServerResult]) -> list[str]:
    """How the servers' status results disagree: settings, restricted roles, versions."""
    answered = {r.server: r.outcome.data for r in results if r.ok and r.outcome is not None}
    lines = []
    for fact in FLEET_FACTS:
        per_server = {server: data[fact] for server, data in answered.items()}
        # Settings and versions are compared name by name, the role list as a whole.
        named = fact != "restricted_roles"
        names = (
            sorted({name for value in per_server.values() for name in value}) if named else [fact]
        )
        for name in names:
            seen = {s: (v.get(name) if named else v) for s, v in per_server.items()}
            if len({json.dumps(value, sort_keys=True) for value in seen.values()}) > 1:
                shown = "; ".join(f"{server}: {value!r}" for server, value in seen.items())
                lines.append(f"drift in {name}: {shown}")
                if fact == "settings":
                    lines.append(settings_fix(name, answered))
    return lines


def settings_fix(name: str, answered: dict[str, Any]) -> str:
    """How to bring a drifted setting in line: the primary's value everywhere."""
    primaries = [data for data in answered.values() if data["node"] == "primary"]
    if len(primaries) != 1:
        return f"  fix: ALTER SYSTEM SET {name} to one value on every node, then pg_reload_conf()"
    value = str(primaries[0]["settings"].get(name, "")).replace("'", "''")
    return (
        f"  fix: on each node that differs, ALTER SYSTEM SET {name} = '{value}' (the "
        "primary's value) and SELECT pg_reload_conf(); with Patroni, set it in the DCS"
    )


def run_fleet(
    dsns: list[str],
    action: Callable[[str], Outcome],
    as_json: bool,
    command: str,
    compare: Callable[[list[ServerResult]], list[str]] | None = None,
) -> int:
    """Run ``action`` on every server; report each; non-zero if any failed, or if
    ``compare`` finds the servers disagree (status over a fleet)."""
    results = []
    for number, dsn in enumerate(dsns, start=1):
        label = server_label(dsn)
        if len(dsns) > 1 and not as_json:
            print(f"[{number}/{len(dsns)}] {label}", file=sys.stderr)
        try:
            outcome = action(dsn)
        except (InstallError, psycopg.Error, CliError) as error:
            results.append(ServerResult(label, False, error=explain(error)))
            if not as_json:
                print(f"{command} failed on {label}: {results[-1].error}", file=sys.stderr)
            continue
        results.append(ServerResult(label, True, outcome))
        if not as_json:
            print(f"{command} on {label}:")
            for line in outcome.lines:
                print(f"  {line}")
    failed = [r for r in results if not r.ok]
    failing = any(r.outcome is not None and r.outcome.failing for r in results)
    drift = compare(results) if compare is not None and len(dsns) > 1 else []
    if as_json:
        report = {
            "format": JSON_FORMAT,
            "ok": not failed and not drift,
            "servers": [r.as_json() for r in results],
            "drift": drift,
        }
        print(json.dumps(report, indent=2))
    elif len(dsns) > 1:
        for line in drift:
            print(line)
        if compare is not None and not drift:
            print("no drift: every server answered the same settings, roles and versions")
        print(f"{len(dsns) - len(failed)} of {len(dsns)} servers succeeded", file=sys.stderr)
    return 1 if failed or drift or failing else 0
