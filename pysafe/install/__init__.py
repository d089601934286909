"""python -m pysafe install / uninstall: put pysafe on a cluster, or take it off."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pysafe import LOGIN_EVENT_VERSION, __version__
from pysafe.install import cluster, files, function_review, restart
from pysafe.install.connection import connect
from pysafe.install.errors import InstallError
from pysafe.install.server_facts import (
    ServerFacts,
    read_server_facts,
    require_installable,
    server_python_version,
)

__all__ = ["InstallError", "InstallReport", "install", "uninstall"]

Progress = Callable[[str], None]


@dataclass
class InstallReport:
    """What install or uninstall did on one server."""

    server: str
    steps: list[str] = field(default_factory=list)
    databases: dict[str, str] = field(default_factory=dict)
    restart_needed: bool = False
    restart_command: str = ""
    standby: bool = False


STANDBY_UNINSTALL_NOTE = (
    "standby: removed this host's preload entry and settings; the extension and "
    "pysafe_restricted leave when uninstall runs on the primary"
)
STANDBY_NOTE = (
    "standby: placed this host's files, shim and preload entry only; the extension, "
    "its functions and pysafe_restricted reach this server from the primary by "
    "replication (run install on the primary for those)"
)


def install(
    dsn: str,
    pg_config: Path | None = None,
    progress: Progress = lambda _: None,
    session_preload: bool = False,
    shim: bool = True,
) -> InstallReport:
    """Install pysafe on the server ``dsn`` reaches; safe to run again.

    ``session_preload`` (servers before 17): also load pysafe_session at every
    connection, so restricted sessions report read-only defaults at once; it
    costs every connection a library load (docs/benchmarks.md).

    ``shim=False`` is Python-only mode, for servers that cannot load
    libraries: no C shim, only what PL/Python and event triggers can do.
    """
    with connect(dsn) as conn:
        facts = read_server_facts(conn)
        require_installable(facts)
        if session_preload and facts.version_num >= LOGIN_EVENT_VERSION:
            raise InstallError(
                "--session-preload is for servers before PostgreSQL 17; from 17 on, the "
                "login event trigger does its job. Run install without it."
            )
        if session_preload and not shim:
            raise InstallError("--session-preload needs the shim; drop --no-shim or it.")
        paths = files.find_pg_config(facts.major, pg_config)
        if shim:
            files.require_build_tools(paths)
        files.require_writable(paths)
        python_version = server_python_version(conn, facts.in_recovery)
        report = InstallReport(server=conn.info.host or "local socket")
        report.standby = facts.in_recovery

        # Every check passed: from here on, steps change the server.
        progress("placing server-side Python code")
        files.place_python_code(paths, python_version)
        report.steps.append(f"server-side Python code in {paths.python_dir}")
        refused = function_review.place_refused_builtins(paths, conn)
        report.steps.append(f"refused volatile built-ins for the shim in {refused}")
        cleared = function_review.place_cleared_c_functions(paths)
        report.steps.append(f"cleared extension functions for the shim in {cleared}")
        refused_c = function_review.place_refused_c_functions(paths)
        report.steps.append(f"refused extension functions for the shim in {refused_c}")
        # On a standby the role comes from the primary, installed there first.
        if not facts.in_recovery and cluster.ensure_restricted_group(conn):
            report.steps.append(
                f"role {cluster.RESTRICTED_GROUP} created (pysafe.restrict() grants it)"
            )
        files.place_extension_files(paths)
        report.steps.append(f"extension files in {paths.extension_dir}")
        if shim:
            progress("building the shim with PGXS")
            files.build_shim(paths)
            report.steps.append(f"shim built and installed as {paths.shim_library}")
            if cluster.add_library(conn, cluster.SHARED_PRELOAD, files.SHIM_NAME):
                report.steps.append("pysafe added to shared_preload_libraries (ALTER SYSTEM)")
        else:
            report.steps.append("Python-only mode: no shim (see python -m pysafe status)")
            cluster.seed_roles_setting(conn)
        if session_preload and cluster.add_library(
            conn, cluster.SESSION_PRELOAD, files.SESSION_LIBRARY
        ):
            report.steps.append("pysafe_session added to session_preload_libraries")
        conn.execute("SELECT pg_reload_conf()")
        # Also when the server runs another build than the one just placed.
        report.restart_needed = files.restart_needed(shim, facts.loaded_shim_build)
        if shim and facts.shim_loaded and report.restart_needed:
            report.steps.append(
                f"the server runs shim build {facts.loaded_shim_build or 'before 0.2.0'}; "
                f"build {files.shim_build()} is installed and loads at the restart"
            )
        if report.restart_needed:
            report.restart_command = restart.restart_command(conn, paths)
        databases = cluster.target_databases(conn)

    install_catalog_part(dsn, databases, facts, report, shim=shim, progress=progress)
    return report


def install_catalog_part(
    dsn: str,
    databases: list[str],
    facts: ServerFacts,
    report: InstallReport,
    *,
    shim: bool,
    progress: Progress,
) -> None:
    """The extension in every database, or on a standby, what replication brought."""
    if facts.in_recovery:
        report.steps.append(STANDBY_NOTE)
        for dbname in databases:
            with cluster.connect_to(dsn, dbname) as db_conn:
                report.databases[dbname] = cluster.replicated_extension(db_conn, __version__)
        return
    for dbname in databases:
        progress(f"extension in database {dbname}")
        with cluster.connect_to(dsn, dbname) as db_conn:
            report.databases[dbname] = cluster.ensure_extension(db_conn, __version__, shim)
    if not shim and facts.version_num < LOGIN_EVENT_VERSION:
        with connect(dsn) as conn:
            roles = [str(r[0]) for r in conn.execute("SELECT pysafe.apply_role_defaults()")]
        report.steps.append(
            "role-level default_transaction_read_only = on for: "
            + (", ".join(roles) or "none")
            + " (run SELECT pysafe.apply_role_defaults() after changing pysafe.roles)"
        )


def uninstall(
    dsn: str, pg_config: Path | None = None, progress: Progress = lambda _: None
) -> InstallReport:
    """Remove everything install added; the cluster is unrestricted at once."""
    with connect(dsn) as conn:
        facts = read_server_facts(conn)
        if not facts.is_superuser:
            raise InstallError("pysafe uninstall must connect as a superuser.")
        paths = files.find_pg_config(facts.major, pg_config)
        files.require_writable(paths)
        report = InstallReport(server=conn.info.host or "local socket")
        reset = cluster.reset_pysafe_settings(conn)
        if reset:
            report.steps.append(f"ALTER SYSTEM RESET {', '.join(reset)}")
        # Before any file goes: a listed library that is missing fails every login.
        if cluster.remove_library(conn, cluster.SESSION_PRELOAD, files.SESSION_LIBRARY):
            report.steps.append("pysafe_session removed from session_preload_libraries")
        if cluster.remove_library(conn, cluster.SHARED_PRELOAD, files.SHIM_NAME):
            report.steps.append("pysafe removed from shared_preload_libraries")
        conn.execute("SELECT pg_reload_conf()")
        report.restart_needed = facts.shim_loaded
        if report.restart_needed:
            report.restart_command = restart.restart_command(conn, paths)
        report.standby = facts.in_recovery
        databases = cluster.target_databases(conn)

    if facts.in_recovery:
        report.steps.append(STANDBY_UNINSTALL_NOTE)
    else:
        for dbname in databases:
            progress(f"extension in database {dbname}")
            with cluster.connect_to(dsn, dbname) as db_conn:
                report.databases[dbname] = cluster.drop_extension(db_conn)
        with connect(dsn) as conn:
            if cluster.drop_restricted_group(conn):
                report.steps.append(f"role {cluster.RESTRICTED_GROUP} dropped")
    report.steps.extend(f"removed {path}" for path in files.remove_files(paths))
    return report
