"""Which protections are live: one row each, for pysafe.status() and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from pysafe import LOGIN_EVENT_VERSION, __version__
from pysafe.policy.settings import PolicySettings


@dataclass(frozen=True)
class StatusFacts:
    """What the server says about pysafe in this session's database."""

    server_version_num: int
    shim_loaded: bool
    session_restricted: bool
    settings: PolicySettings
    login_trigger_language: str | None  # of the enabled pysafe_login trigger
    ddl_veto_trigger: bool  # pysafe_ddl_veto enabled
    session_preload: bool  # pysafe_session in session_preload_libraries
    # restricted login roles whose sessions would not start read-only (Python-only, before 17)
    roles_missing_read_only_default: tuple[str, ...]
    session_user: str = ""
    restriction_path: str | None = None  # "alice > team > reporting"
    extension_version: str | None = None
    server_version: str = ""
    log_refusals: bool = True
    standby: bool = False  # in recovery: catalogs, roles and memberships come from a primary
    replication_source: str | None = None  # "host:port" the standby streams from
    unknown_listed_roles: tuple[str, ...] = ()  # names in pysafe.roles that match no role


@dataclass(frozen=True)
class StatusRow:
    protection: str
    live: bool
    detail: str


def shim_rows(facts: StatusFacts) -> list[StatusRow]:
    """Protections only the shim gives."""
    shim, settings = facts.shim_loaded, facts.settings
    missing = "not live: needs the shim (full mode)"
    return [
        StatusRow(
            "read-only forcing at every statement",
            shim and settings.force_read_only,
            "XactReadOnly set at every statement" if shim else missing,
        ),
        StatusRow(
            "DML refused at executor start",
            shim and settings.block_dml,
            "also in CTEs, functions, DO, prepared statements"
            if shim
            else "not live: only the read-only default, which a session can SET off",
        ),
        StatusRow(
            "side-effecting functions refused",
            shim and settings.block_c_functions,
            "C functions that may write, uncleared untrusted-language functions, at fmgr"
            if shim
            else missing,
        ),
        StatusRow(
            "volatile built-ins refused unless cleared",
            shim and (settings.block_c_functions or settings.force_read_only),
            "writers and unreviewed ones (pysafe.function_review())" if shim else missing,
        ),
        StatusRow(
            "temporary tables for restricted sessions",
            shim and settings.allow_temp_objects,
            "allowed (pysafe.allow_temp_objects)"
            if shim and settings.allow_temp_objects
            else "refused (pysafe.allow_temp_objects is off, or no shim)",
        ),
        StatusRow(
            "utility veto on every utility statement",
            shim,
            "C fast path, then the Python policy, which must read the statement as the server"
            if shim
            else missing,
        ),
        StatusRow(
            "read-only settings protected on every path",
            shim and settings.force_read_only,
            "check hooks: SET, set_config(), function SET clauses, startup options"
            if shim
            else "not live: SET default_transaction_read_only = off works",
        ),
        StatusRow(
            "read-write requests kept read-only",
            shim and settings.force_read_only,
            ("ignored with a NOTICE" if settings.ignore_read_write_requests else "refused")
            + " (pysafe.read_write_requests)"
            if shim
            else missing,
        ),
        StatusRow(
            "pysafe settings cluster-wide only",
            shim,
            "check hooks refuse SET, set_config(), ALTER ROLE/DATABASE SET, startup options"
            if shim
            else missing,
        ),
        StatusRow(
            "checks in parallel workers",
            shim,
            "function and executor checks run in every worker" if shim else missing,
        ),
        StatusRow(
            "replication connections refused",
            shim,
            "restricted roles cannot open walsender connections" if shim else missing,
        ),
        StatusRow(
            "sessions that become restricted are ended",
            shim,
            "pysafe.restrict(), a reload of pysafe.roles, a GRANT, a demotion or DROP ROLE "
            "ends an open session at its next hook or commit"
            if shim
            else missing,
        ),
        StatusRow(
            "superuser-only and log-writing settings kept",
            shim,
            "check hooks on every superuser-only setting and on debug_print_*, trace_*, log_*"
            if shim
            else missing,
        ),
        StatusRow(
            "locks, programs, files and log volume bounded",
            shim,
            "writes refused right after parse analysis; no COPY PROGRAM or server-file "
            "writes; at most 4 exported snapshots per transaction and 32 log messages below "
            "ERROR per statement; refusal lines no session can forge"
            if shim
            else missing,
        ),
        StatusRow(
            "refusals counted",
            shim,
            "per database, role and rule in shared memory: SELECT * FROM pysafe.refusals "
            "(superusers and pg_monitor)"
            if shim
            else "not counted without the shim: only the server log has them",
        ),
    ]


def login_row(facts: StatusFacts) -> StatusRow:
    """How restricted sessions get their read-only defaults at login."""
    name = "read-only defaults at login"
    if facts.server_version_num >= LOGIN_EVENT_VERSION:
        language = facts.login_trigger_language
        return StatusRow(
            name,
            language is not None,
            f"pysafe_login event trigger ({language})"
            if language
            else "not live: the pysafe_login event trigger is missing or disabled",
        )
    if facts.shim_loaded:
        detail = "the shim, before the login's first statement"
        if facts.session_preload:
            detail += "; pysafe_session at connection"
        return StatusRow(name, True, detail)
    missing = facts.roles_missing_read_only_default
    if missing:
        return StatusRow(
            name,
            False,
            f"not live for {', '.join(missing)}: no role-level default_transaction_read_only "
            "= on, or a per-database value beats it (a restricted role can ALTER ROLE itself); "
            "SELECT pysafe.apply_role_defaults() sets it again",
        )
    return StatusRow(
        name,
        True,
        "role-level defaults on every restricted login role; run SELECT "
        "pysafe.apply_role_defaults() after changing pysafe.roles",
    )


def self_change_row(facts: StatusFacts) -> StatusRow:
    """TRUNCATE and ALTER ROLE on itself fire no event trigger: say what that leaves open."""
    name = "TRUNCATE and ALTER ROLE on itself refused"
    if facts.shim_loaded:
        return StatusRow(name, True, "utility veto, and read-only forcing")
    later = (
        "its login trigger still starts the next sessions read-only"
        if facts.server_version_num >= LOGIN_EVENT_VERSION
        else "a RESET of its own default_transaction_read_only makes its next sessions "
        "read-write until SELECT pysafe.apply_role_defaults()"
    )
    return StatusRow(
        name,
        False,
        "not live: neither fires an event trigger, so only the read-only default refuses them; "
        "after SET default_transaction_read_only = off a restricted session can TRUNCATE, "
        f"change its own password and its own defaults ({later})",
    )


def node_row(facts: StatusFacts) -> StatusRow:
    """Primary or standby, and where a standby streams from (fleet drift checks use it)."""
    if not facts.standby:
        return StatusRow("node", True, "primary: pysafe.restrict() changes start here")
    source = facts.replication_source or "a source this role cannot see"
    return StatusRow(
        "node",
        True,
        f"standby of {source}: roles and memberships arrive by replication; "
        "pysafe.* settings are this node's own (compare with status over the fleet)",
    )


def listed_roles_row(facts: StatusFacts) -> StatusRow:
    """Names in pysafe.roles that match no role restrict nobody: say so."""
    if not facts.unknown_listed_roles:
        return StatusRow("pysafe.roles names existing roles", True, "every name matches a role")
    names = ", ".join(facts.unknown_listed_roles)
    return StatusRow(
        "pysafe.roles names existing roles",
        False,
        f"no role matches {names}: they restrict nobody (names are case-sensitive; "
        "pysafe.audit() suggests the role meant)",
    )


def status_rows(facts: StatusFacts) -> list[StatusRow]:
    mode = "full (shim loaded)" if facts.shim_loaded else "Python-only (no shim): weaker"
    home = (
        "pysafe.* settings, superuser-only (ALTER SYSTEM + reload)"
        if facts.shim_loaded
        else "the config files (ALTER SYSTEM), read through pg_file_settings; "
        "SET or ALTER ROLE of pysafe.* has no effect"
    )
    ddl_detail = (
        "stands aside: the shim vetoes every utility statement"
        if facts.shim_loaded
        else "DDL commands of restricted sessions go to the Python policy"
    )
    return [
        StatusRow("mode", facts.shim_loaded, mode),
        StatusRow("this session restricted", facts.session_restricted, restriction_detail(facts)),
        StatusRow("versions", True, versions_detail(facts)),
        node_row(facts),
        listed_roles_row(facts),
        StatusRow("configuration home", True, home),
        *shim_rows(facts),
        StatusRow(
            "DDL veto by event trigger",
            facts.ddl_veto_trigger and not facts.shim_loaded,
            ddl_detail if facts.ddl_veto_trigger else "not live: pysafe_ddl_veto missing",
        ),
        login_row(facts),
        self_change_row(facts),
        StatusRow(
            "refusals logged",
            facts.log_refusals,
            "one JSON line per refusal in the server log"
            if facts.log_refusals
            else "pysafe.log_refusals is off",
        ),
    ]


def restriction_detail(facts: StatusFacts) -> str:
    """Why this session is (not) restricted, with the membership path."""
    user = facts.session_user or "the session user"
    if facts.session_restricted:
        return f"session user {user}, listed through {facts.restriction_path or 'a listed role'}"
    return f"session user {user} is not restricted"


def versions_detail(facts: StatusFacts) -> str:
    extension = facts.extension_version or "not installed in this database"
    return f"pysafe {__version__} (extension {extension}); PostgreSQL {facts.server_version}"
