"""python -m pysafe: install, uninstall, status, check, audit, restrict, unrestrict, demo.

Every server command takes --dsn (repeatable) or --dsn-file for a fleet,
reports per server, exits non-zero if any server failed, and prints JSON
with --json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from pglast.parser import ParseError

from pysafe import __version__
from pysafe.fleet import CliError, Outcome, fleet_drift, read_dsns, run_fleet
from pysafe.install import InstallReport, install, uninstall
from pysafe.install.cluster import connect_to, target_databases
from pysafe.install.connection import LOCAL_DSN, connect
from pysafe.policy import PolicySettings, decide_text
from pysafe.policy.calls import calls_functions
from pysafe.policy.parsing import StatementTooDeep
from pysafe.refusal_counts import read_refusal_counts, refusal_lines


def report_lines(report: InstallReport) -> list[str]:
    lines = [f"- {step}" for step in report.steps]
    width = max((len(name) for name in report.databases), default=0)
    lines += [f"database {name:<{width}}  {done}" for name, done in report.databases.items()]
    if report.restart_needed:
        lines.append(
            "RESTART NEEDED: restart PostgreSQL to load (or unload) the pysafe shim install "
            "placed; until then the server runs another shim, or none, and pysafe's "
            "protection is incomplete. Run:"
        )
        lines.append(f"    {report.restart_command}")
    return lines


def install_outcome(args: argparse.Namespace, dsn: str) -> Outcome:
    progress = (lambda _: None) if args.json else (lambda m: print(f"... {m}", file=sys.stderr))
    if args.command == "install":
        report = install(
            dsn,
            args.pg_config,
            progress=progress,
            session_preload=args.session_preload,
            shim=not args.no_shim,
        )
    else:
        report = uninstall(dsn, args.pg_config, progress=progress)
    return Outcome(dataclasses.asdict(report), report_lines(report))


# What a fleet's nodes should agree on (status --dsn-file compares them).
FLEET_FACTS_QUERY = """
SELECT pg_is_in_recovery() AS standby,
       (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver) AS source,
       (SELECT json_object_agg(name, setting ORDER BY name) FROM pg_settings
         WHERE name LIKE 'pysafe.%%') AS settings,
       (SELECT coalesce(json_agg(rolname ORDER BY rolname), '[]') FROM pg_roles
         WHERE rolcanlogin AND pysafe_internal.restriction_path(oid) IS NOT NULL) AS restricted,
       (SELECT extversion FROM pg_extension WHERE extname = 'pysafe') AS pysafe,
       current_setting('server_version') AS server
"""


def status_outcome(args: argparse.Namespace, dsn: str) -> Outcome:
    with connect(dsn) as conn:
        rows = conn.execute("SELECT protection, live, detail FROM pysafe.status()").fetchall()
        standby, source, settings, restricted, pysafe_version, server = conn.execute(
            FLEET_FACTS_QUERY
        ).fetchone()  # type: ignore[misc]
        refusals = read_refusal_counts(conn)
    data = {
        "node": "standby" if standby else "primary",
        "replication_source": source,
        "protections": [{"protection": p, "live": live, "detail": d} for p, live, d in rows],
        "settings": settings or {},
        "restricted_roles": restricted,
        "versions": {"pysafe": pysafe_version, "server": server},
        "refusals": refusals.as_json(),
    }
    width = max(len(str(r[0])) for r in rows)
    lines = [f"{'LIVE' if live else 'off ':<4}  {p:<{width}}  {d}" for p, live, d in rows]
    lines.append(f"restricted login roles: {', '.join(restricted) or 'none'}")
    lines += refusal_lines(refusals)
    return Outcome(data, lines)


# pysafe.audit()'s severities, worst first.
SEVERITIES = ("high", "medium", "low", "info")


def audit_outcome(args: argparse.Namespace, dsn: str) -> Outcome:
    """pysafe.audit(), plus the databases of the server without pysafe objects."""
    with connect(dsn) as conn:
        found = conn.execute("SELECT severity, finding, object, fix FROM pysafe.audit()")
        rows = [row for row in found if row[2] != "cluster"]  # the note about other databases
        databases = target_databases(conn)
    for dbname in databases:
        with connect_to(dsn, dbname) as db:
            if db.execute("SELECT 1 FROM pg_extension WHERE extname = 'pysafe'").fetchone():
                continue
        rows.append(
            (
                "high",
                f"database {dbname} has no pysafe objects: restricted sessions there are refused "
                "everything that needs the Python policy",
                f"database {dbname}",
                "python -m pysafe install (adds the extension to every database)",
            )
        )
    rows.sort(key=lambda row: (SEVERITIES.index(row[0]), row[2], row[1]))
    data = [dict(zip(("severity", "finding", "object", "fix"), r, strict=True)) for r in rows]
    if args.fail_on is not None:
        worst = SEVERITIES.index(args.fail_on)
        serious = [f"{row[0]}: {row[1]}" for row in rows if SEVERITIES.index(row[0]) <= worst]
        if serious:
            raise CliError(f"audit found {args.fail_on} findings or worse: " + "; ".join(serious))
    if not rows:
        return Outcome(data, ["no findings"])
    lines = []
    for severity, finding, _, fix in rows:
        lines += [f"{severity.upper():<6} {finding}", f"       fix: {fix}"]
    return Outcome(data, lines)


# How long a standby may take to replay a restriction made on its primary.
REPLICATION_WAIT_SECONDS = 10.0


def restrict_outcome(args: argparse.Namespace, dsn: str) -> Outcome:
    """On a primary, restrict or unrestrict; on a standby, verify that replication did."""
    restrict = args.command == "restrict"
    with connect(dsn) as conn:
        if not is_standby(conn):
            function = "pysafe.restrict" if restrict else "pysafe.unrestrict"
            [(message,)] = conn.execute(f"SELECT {function}(%s)", [args.role]).fetchall()
            data = {"role": args.role, "node": "primary", "message": message}
            return Outcome(data, [str(message)])
        path = replicated_restriction(conn, args.role, restrict)
    state = f"restricted here ({path})" if path else "not restricted here"
    message = f"standby: {args.role} is {state}, as replicated from the primary"
    return Outcome({"role": args.role, "node": "standby", "message": message}, [message])


def is_standby(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]


def replicated_restriction(conn: psycopg.Connection, role: str, restricted: bool) -> str | None:
    """The role's restriction path once the standby shows the expected state."""
    deadline = time.monotonic() + REPLICATION_WAIT_SECONDS
    while True:
        [(path,)] = conn.execute(
            "SELECT pysafe_internal.restriction_path(pysafe_internal.existing_role(%s))", [role]
        ).fetchall()
        if (path is not None) == restricted:
            return None if path is None else str(path)
        if time.monotonic() > deadline:
            change = "restricted" if restricted else "unrestricted"
            raise CliError(
                f"standby: {role} is not {change} here after {REPLICATION_WAIT_SECONDS:.0f} s; "
                "run the command on the primary, and check pg_stat_replication there"
            )
        time.sleep(0.2)


def primaries_first(dsns: list[str]) -> list[str]:
    """Servers in the order restrict needs: primaries act, then standbys verify."""

    def standby_rank(dsn: str) -> int:
        try:
            with connect(dsn, connect_timeout="10") as conn:
                return 1 if is_standby(conn) else 0
        except psycopg.Error:
            return 0  # unreachable: run_fleet reports it in its place

    return sorted(dsns, key=standby_rank)


def read_sql(sources: list[str]) -> list[tuple[str, str]]:
    """(name, text) of each SQL file, or of standard input."""
    texts = []
    for source in sources or ["-"]:
        try:
            texts.append((source, sys.stdin.read() if source == "-" else Path(source).read_text()))
        except OSError as error:
            raise CliError(f"cannot read {source}: {error.strerror}") from error
    return texts


# What offline check cannot see: it has the statement policy and the review
# of built-ins, but no catalog.  Said on every statement it affects.
OFFLINE_NOTE = (
    "offline: only built-in functions were judged; the language, volatility and body "
    "of any other function it calls need a server (--dsn)"
)


def check_rows_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        mark = f"{row['verdict'].upper():<8}"
        lines.append(f"{mark} [{row['rule']}] {row['statement']}")
        if row["verdict"] in ("refused", "error"):
            lines.append(f"         {row['message']}")
        if row["verdict"] in ("unknown", "error") or (row["detail"] or "").startswith("offline:"):
            lines.append(f"         {row['detail']}")
    return lines


def failing_rows(rows: list[dict[str, Any]]) -> bool:
    """For --fail-on-refusal: anything not known to be allowed."""
    return any(row["verdict"] != "allowed" for row in rows)


def server_check_outcome(args: argparse.Namespace, dsn: str) -> Outcome:
    """pysafe.check() on the server: the policy with that server's settings and catalog."""
    rows = []
    keys = ("statement", "verdict", "rule", "message", "detail")
    with connect(dsn) as conn:
        for source, text in args.sql:
            found = conn.execute(
                "SELECT statement, verdict, rule, message, detail FROM pysafe.check(%s, %s)",
                [text, args.role or "pysafe_restricted"],
            )
            rows += [{"source": source, **dict(zip(keys, r, strict=True))} for r in found]
    failing = args.fail_on_refusal and failing_rows(rows)
    return Outcome(rows, check_rows_lines(rows), failing=failing)


def run_offline_check(args: argparse.Namespace) -> int:
    """No server: what the policy does with each statement, with settings from the flags."""
    settings = PolicySettings(
        block_dml=not args.allow_dml,
        block_ddl=not args.allow_ddl,
        allow_temp_objects=args.allow_temp_objects,
    )
    rows = []
    for source, text in args.sql:
        try:
            results = decide_text(text, settings)
        except (ParseError, StatementTooDeep) as error:
            # A failure, as on a server: exit status 2 is for usage errors.
            print(f"{source}: cannot parse: {error}; fix the SQL and run again", file=sys.stderr)
            return 1
        rows += [
            {
                "source": source,
                "statement": r.text,
                "verdict": "allowed" if r.verdict.allowed else "refused",
                "rule": r.verdict.rule,
                "message": r.verdict.message,
                "detail": OFFLINE_NOTE
                if r.verdict.allowed and calls_functions(r.stmt)
                else r.verdict.detail,
            }
            for r in results
        ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("\n".join(check_rows_lines(rows)))
    return 1 if args.fail_on_refusal and failing_rows(rows) else 0


def run_server_command(args: argparse.Namespace) -> int:
    if args.command == "check":
        # Read once: standard input would be empty for every server after the first.
        args.sql = read_sql(args.files)
        if not (args.dsn or args.dsn_file):
            return run_offline_check(args)
    local = args.command in ("install", "uninstall") and not (args.dsn or args.dsn_file)
    dsns = [LOCAL_DSN] if local else read_dsns(args.dsn, args.dsn_file)
    if args.command in ("restrict", "unrestrict") and len(dsns) > 1:
        dsns = primaries_first(dsns)
    compare = fleet_drift if args.command == "status" else None
    return run_fleet(
        dsns, lambda dsn: args.outcome(args, dsn), args.json, args.command, compare=compare
    )


def run_demo(_args: argparse.Namespace) -> int:
    from pysafe.demo import run  # noqa: PLC0415 - needs the dev extra

    return run()


def add_server_options(sub: argparse.ArgumentParser, where: str = "") -> None:
    """--dsn, --dsn-file and --json; ``where`` says what happens without a --dsn."""
    sub.add_argument(
        "--dsn",
        action="append",
        help=f"libpq connection string; repeat for several servers{where}",
    )
    sub.add_argument(
        "--dsn-file",
        type=Path,
        help="a file with one connection string per line (# starts a comment line)",
    )
    sub.add_argument("--json", action="store_true", help="print results as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pysafe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pysafe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("install", "install pysafe on a cluster (run on the database host, as root)"),
        ("uninstall", "remove everything install added"),
    ):
        sub = commands.add_parser(name, help=text)
        add_server_options(
            sub,
            f" (default: {LOCAL_DSN}, PGPORT and the like apply; as root over a local "
            "socket pysafe connects as the OS user named like the database user, for peer "
            "authentication)",
        )
        sub.add_argument(
            "--pg-config",
            type=Path,
            default=None,
            help="pg_config of the server's major version (default: found)",
        )
        sub.set_defaults(handler=run_server_command, outcome=install_outcome)
        if name == "install":
            sub.add_argument(
                "--session-preload",
                action="store_true",
                help="PostgreSQL < 17: also load pysafe_session at every connection, so "
                "restricted sessions report read-only defaults at once (costs each connection)",
            )
            sub.add_argument(
                "--no-shim",
                action="store_true",
                help="Python-only mode, for servers that cannot load libraries: weaker, "
                "see docs/coverage.md 'Modes'",
            )
    status = commands.add_parser("status", help="which protections are live for this session")
    add_server_options(status)
    status.set_defaults(handler=run_server_command, outcome=status_outcome)
    audit = commands.add_parser(
        "audit", help="escape hatches around restricted roles, each with its fix (superuser)"
    )
    add_server_options(audit)
    audit.add_argument(
        "--fail-on",
        choices=SEVERITIES[:3],
        help="exit 1 if a server has a finding of this severity or worse (for monitoring)",
    )
    audit.set_defaults(handler=run_server_command, outcome=audit_outcome)
    for name, text in (
        ("restrict", "restrict a role cluster-wide; its open sessions end (superuser)"),
        ("unrestrict", "undo restrict (superuser)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("role", help="role name as pg_roles spells it")
        add_server_options(sub)
        sub.set_defaults(handler=run_server_command, outcome=restrict_outcome)
    check = commands.add_parser(
        "check", help="what the policy does with SQL: offline, or on servers with --dsn"
    )
    check.add_argument("files", nargs="*", help="SQL files (default: standard input)")
    add_server_options(check, " (without one, check works offline)")
    check.add_argument(
        "--role", help="with --dsn: the role to judge for (default: any restricted role)"
    )
    check.add_argument("--allow-dml", action="store_true", help="offline: pysafe.block_dml = off")
    check.add_argument("--allow-ddl", action="store_true", help="offline: pysafe.block_ddl = off")
    check.add_argument(
        "--allow-temp-objects",
        action="store_true",
        help="offline: pysafe.allow_temp_objects = on",
    )
    check.add_argument(
        "--fail-on-refusal",
        action="store_true",
        help="exit 1 if any statement would be refused, or its outcome is unknown or an error",
    )
    check.set_defaults(handler=run_server_command, outcome=server_check_outcome)
    demo = commands.add_parser("demo", help="show pysafe on a throwaway local cluster")
    demo.set_defaults(handler=run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CliError as error:
        print(f"pysafe: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
