"""python -m pysafe: install, uninstall, check, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

from pysafe import __version__
from pysafe.install import InstallError, InstallReport, install, uninstall
from pysafe.policy import PolicySettings, decide_text


def print_report(report: InstallReport, action: str) -> None:
    print(f"{action} on {report.server}:")
    for step in report.steps:
        print(f"  - {step}")
    width = max((len(name) for name in report.databases), default=0)
    for dbname, outcome in report.databases.items():
        print(f"  database {dbname:<{width}}  {outcome}")
    if report.restart_needed:
        print(
            "  RESTART NEEDED: restart PostgreSQL to load (or unload) the pysafe shim; "
            "until then pysafe does not protect anything."
        )


def print_progress(message: str) -> None:
    print(f"... {message}")


def run_install_like(args: argparse.Namespace) -> int:
    failures = 0
    for dsn in args.dsn:
        try:
            if args.command == "install":
                report = install(
                    dsn,
                    args.pg_config,
                    progress=print_progress,
                    session_preload=args.session_preload,
                    shim=not args.no_shim,
                )
            else:
                report = uninstall(dsn, args.pg_config, progress=print_progress)
        except (InstallError, psycopg.Error) as error:
            failures += 1
            print(f"{args.command} failed: {error}", file=sys.stderr)
            continue
        print_report(report, args.command)
    return 1 if failures else 0


def run_check(args: argparse.Namespace) -> int:
    """Offline: what the policy does with each statement of SQL files (or stdin)."""
    settings = PolicySettings(block_dml=not args.allow_dml, block_ddl=not args.allow_ddl)
    refused = 0
    sources = args.files or ["-"]
    for source in sources:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        try:
            results = decide_text(text, settings)
        except Exception as error:  # pglast raises its own ParseError
            print(f"{source}: cannot parse: {error}", file=sys.stderr)
            return 2
        for result in results:
            verdict = result.verdict
            if verdict.allowed:
                print(f"ALLOWED  [{verdict.rule}] {result.text}")
            else:
                refused += 1
                print(f"REFUSED  [{verdict.rule}] {result.text}\n         {verdict.message}")
    return 1 if refused and args.fail_on_refusal else 0


def run_status(args: argparse.Namespace) -> int:
    """pysafe.status() of each server, as a table."""
    failures = 0
    for dsn in args.dsn:
        try:
            with psycopg.connect(dsn) as conn:
                rows = conn.execute(
                    "SELECT protection, live, detail FROM pysafe.status()"
                ).fetchall()
                where = conn.info.host or "local socket"
        except psycopg.Error as error:
            failures += 1
            print(f"status failed: {error}".strip(), file=sys.stderr)
            print("  (is pysafe installed there? python -m pysafe install)", file=sys.stderr)
            continue
        print(f"pysafe status on {where}:")
        width = max(len(str(r[0])) for r in rows)
        for protection, live, detail in rows:
            print(f"  {'LIVE' if live else 'off ':<4}  {protection:<{width}}  {detail}")
    return 1 if failures else 0


def run_demo(_args: argparse.Namespace) -> int:
    from pysafe.demo import run  # noqa: PLC0415 - needs the dev extra

    return run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pysafe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pysafe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("install", "install pysafe on a cluster (run on the database host, as root)"),
        ("uninstall", "remove everything install added"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument(
            "--dsn",
            action="append",
            required=True,
            help="libpq connection string of a superuser; repeat for several servers",
        )
        sub.add_argument(
            "--pg-config",
            type=Path,
            default=None,
            help="pg_config of the server's major version (default: found)",
        )
        sub.set_defaults(handler=run_install_like)
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
                "see README 'Modes'",
            )
    status = commands.add_parser("status", help="which protections are live on a server")
    status.add_argument("--dsn", action="append", required=True, help="libpq connection string")
    status.set_defaults(handler=run_status)
    check = commands.add_parser("check", help="offline: what the policy does with SQL files")
    check.add_argument("files", nargs="*", help="SQL files (default: standard input)")
    check.add_argument("--allow-dml", action="store_true", help="as with pysafe.block_dml = off")
    check.add_argument("--allow-ddl", action="store_true", help="as with pysafe.block_ddl = off")
    check.add_argument(
        "--fail-on-refusal", action="store_true", help="exit 1 when any statement would be refused"
    )
    check.set_defaults(handler=run_check)
    demo = commands.add_parser("demo", help="show pysafe on a throwaway local cluster")
    demo.set_defaults(handler=run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
