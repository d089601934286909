"""The code behind pysafe's PL/Python functions, run inside the server.

pysafe_internal.decide_utility(text, text, integer): the shim calls it for every
utility statement of a restricted session that its fast path does not pass.
Any exception here reaches the shim as an error, and the shim refuses the
statement (fail closed).  pysafe.status(), pysafe.check() and
pysafe.function_review() are for DBAs and run the same policy code; the SQL
wrappers of those three raise the errors raised here (plpy.error) again
without PL/Python's "plpy.Error: " prefix and traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pglast.parser import ParseError

from pysafe.policy.calls import UNKNOWN, CalledFunction, CallReader
from pysafe.policy.parsing import (
    INLINE_PARSE_BYTES,
    MAX_DECIDED_BYTES,
    StatementTooDeep,
    release_freed_memory,
)
from pysafe.policy.settings import PolicySettings
from pysafe.policy.statement import decide_node, decide_statement, decide_text
from pysafe.policy.verdict import READ_ONLY_SQLSTATE

# The policy's catalog queries run under the session's search_path (relation
# names must resolve as the session resolves them), so every operator,
# function and type in them is schema-qualified: no role's objects in
# "$user", public or pg_temp can stand in for PostgreSQL's.
LANGUAGE_QUERY = (
    "SELECT l.lanpltrusted FROM pg_catalog.pg_language l WHERE l.lanname OPERATOR(pg_catalog.=) $1"
)
# Another session's temporary table reads as "o": only the session's own count.
PERSISTENCE_QUERY = (
    "SELECT CASE WHEN c.relpersistence OPERATOR(pg_catalog.=) 't'"
    " AND c.relnamespace OPERATOR(pg_catalog.<>) pg_catalog.pg_my_temp_schema()"
    " THEN 'o' ELSE c.relpersistence END AS relpersistence"
    " FROM pg_catalog.pg_class c"
    " WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)"
)

INTERRUPTS_QUERY = "SELECT pg_catalog.pg_sleep(0)"

# Prepared once per backend (plpy.prepare keeps its plans): preparing again at
# every decision cost more than the decision itself.  The queries are fully
# qualified and resolve their argument when they run, so a kept plan answers
# as a fresh one would.
_PLANS: dict[str, Any] = {}


def prepared(plpy: Any, query: str, types: list[str]) -> Any:
    """The backend's saved plan for ``query``, prepared on first use."""
    plan = _PLANS.get(query)
    if plan is None:
        plan = _PLANS[query] = plpy.prepare(query, types)
    return plan


class ServerCatalogFacts:
    """Catalog facts read through PL/Python's plpy module.

    ``read_relations`` records whether a decision looked at any relation: such
    a verdict depends on search_path and pg_class, so the shim must not
    remember it (see PURE_ALLOW_REPLY).
    """

    def __init__(self, plpy: Any) -> None:
        self._plpy = plpy
        self.read_relations = False

    def language_is_trusted(self, name: str) -> bool | None:
        plan = prepared(self._plpy, LANGUAGE_QUERY, ["pg_catalog.name"])
        rows = self._plpy.execute(plan, [name])
        return bool(rows[0]["lanpltrusted"]) if len(rows) else None

    def relation_persistence(self, name: str) -> str | None:
        self.read_relations = True
        plan = prepared(self._plpy, PERSISTENCE_QUERY, ["pg_catalog.text"])
        rows = self._plpy.execute(plan, [name])
        return str(rows[0]["relpersistence"]) if len(rows) else None


# "Allowed, judged from the question alone": from the arguments, the
# settings in ``flags`` and at most a language's trust.  The shim remembers
# the question and answers it again without Python until pg_language or
# pg_proc changes (installer/verdicts.c).  Python-only mode (no server
# reading) gets NULL, which its event trigger reads as allowed.
PURE_ALLOW_REPLY = "+allow"


def interrupt_taker(plpy: Any) -> Callable[[], None]:
    """What a long parse runs between waits: PostgreSQL's own interrupt check."""

    def let_postgres_take_interrupts() -> None:
        # pg_sleep(0) runs CHECK_FOR_INTERRUPTS: a pending cancel or
        # statement_timeout raises 57014 here, which the shim passes on.
        plpy.execute(prepared(plpy, INTERRUPTS_QUERY, []))

    return let_postgres_take_interrupts


def decide_utility(
    statement: str, command_tag: str, server_reading: str | None, flags: int, plpy: Any
) -> str | None:
    """The shim's question: None or PURE_ALLOW_REPLY to allow, else its reply
    (Verdict.as_server_reply).

    ``server_reading`` is the shim's description of the tree the server will
    run; the policy refuses when its own reading of ``statement`` differs.
    Python-only mode has no shim to read the tree and passes NULL.
    """
    facts = ServerCatalogFacts(plpy)
    verdict = decide_statement(
        statement,
        command_tag,
        PolicySettings.from_flags(flags),
        facts,
        server_reading=server_reading,
        while_waiting=interrupt_taker(plpy),
    )
    reply = verdict.as_server_reply()
    if len(statement) > INLINE_PARSE_BYTES:
        # The tree of a long statement is garbage now: give its heap back.
        release_freed_memory()
    if reply is None and server_reading is not None and not facts.read_relations:
        return PURE_ALLOW_REPLY
    return reply


STATUS_FACTS_QUERY = """
SELECT current_setting('server_version_num')::int AS version,
       pysafe_internal.shim_loaded() AS shim,
       pysafe.session_is_restricted() AS restricted,
       pysafe_internal.shim_settings_flags() AS flags,
       (SELECT l.lanname FROM pg_catalog.pg_event_trigger e
          JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid
          JOIN pg_catalog.pg_language l ON l.oid = p.prolang
         WHERE e.evtname = 'pysafe_login' AND e.evtenabled <> 'D') AS login_language,
       EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger
                WHERE evtname = 'pysafe_ddl_veto' AND evtenabled <> 'D') AS ddl_veto,
       pysafe_internal.session_library_listed() AS session_preload,
       pysafe_internal.roles_missing_read_only_default() AS missing_defaults,
       session_user::text AS session_user,
       pysafe_internal.restriction_path(
         (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user)) AS path,
       (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pysafe') AS extension,
       current_setting('server_version') AS server_version,
       pysafe_internal.setting('pysafe.log_refusals', 'on') AS log_refusals,
       pg_catalog.pg_is_in_recovery() AS standby,
       pysafe_internal.unmatched_listed_roles() AS unknown_roles,
       (SELECT w.sender_host || ':' || w.sender_port
          FROM pg_catalog.pg_stat_wal_receiver w) AS replication_source
"""


def status(plpy: Any) -> list[tuple[str, bool, str]]:
    """Rows of pysafe.status(): (protection, live, detail)."""
    from pysafe.status import StatusFacts, status_rows  # noqa: PLC0415 - only for status()

    row = plpy.execute(STATUS_FACTS_QUERY)[0]
    facts = StatusFacts(
        server_version_num=row["version"],
        shim_loaded=row["shim"],
        session_restricted=row["restricted"],
        settings=PolicySettings.from_flags(row["flags"]),
        login_trigger_language=row["login_language"],
        ddl_veto_trigger=row["ddl_veto"],
        session_preload=row["session_preload"],
        roles_missing_read_only_default=tuple(row["missing_defaults"] or ()),
        session_user=row["session_user"],
        restriction_path=row["path"],
        extension_version=row["extension"],
        server_version=row["server_version"],
        log_refusals=row["log_refusals"] not in ("off", "false", "0"),
        standby=bool(row["standby"]),
        unknown_listed_roles=tuple(row["unknown_roles"] or ()),
        replication_source=row["replication_source"],
    )
    return [(r.protection, r.live, r.detail) for r in status_rows(facts)]


# Functions SQL can call, with their extension: the judged calls of installer/functions.c.
_JUDGED_FUNCTIONS = """
  FROM pg_catalog.pg_proc p
  LEFT JOIN pg_catalog.pg_depend d
         ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
        AND d.objid = p.oid AND d.deptype = 'e'
  LEFT JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
 WHERE p.prorettype OPERATOR(pg_catalog.<>) ALL (ARRAY['internal', 'language_handler',
         'trigger', 'event_trigger']::pg_catalog.regtype[]::pg_catalog.oid[])
   AND NOT ('internal'::pg_catalog.regtype::pg_catalog.oid
            OPERATOR(pg_catalog.=) ANY (p.proargtypes::pg_catalog.oid[]))
"""
# C functions of this database (the shim lists those it refuses: volatile ones
# and reviewed writers, whatever their volatility).
C_FUNCTIONS_QUERY = f"""
SELECT p.oid, p.probin, p.prosrc, e.extname, p.provolatile OPERATOR(pg_catalog.=) 'v' AS volatile
{_JUDGED_FUNCTIONS}
   AND p.prolang = 13
 ORDER BY p.oid::pg_catalog.regprocedure::pg_catalog.text
"""
# Internal-language functions that are not built-ins (10000 is
# FirstGenbkiObjectId), with the built-ins that share their entry point.
INTERNAL_ALIASES_QUERY = f"""
SELECT p.oid, p.prosrc, e.extname,
       ARRAY(SELECT b.oid FROM pg_catalog.pg_proc b
              WHERE b.oid OPERATOR(pg_catalog.<) 10000 AND b.prolang = 12
                AND b.prosrc OPERATOR(pg_catalog.=) p.prosrc) AS builtins,
       ARRAY(SELECT b.oid FROM pg_catalog.pg_proc b
              WHERE b.oid OPERATOR(pg_catalog.<) 10000 AND b.prolang = 12
                AND b.prosrc OPERATOR(pg_catalog.=) p.prosrc
                AND b.provolatile OPERATOR(pg_catalog.=) 'v') AS volatile_builtins
{_JUDGED_FUNCTIONS}
   AND p.prolang = 12 AND p.oid OPERATOR(pg_catalog.>=) 10000
 ORDER BY p.oid::pg_catalog.regprocedure::pg_catalog.text
"""
# Functions in untrusted languages, pysafe's own (an extension member owned by
# a superuser) marked, with a superuser's clearance if any.
UNTRUSTED_FUNCTIONS_QUERY = f"""
SELECT p.oid, l.lanname::pg_catalog.text AS lanname, e.extname,
       pysafe_internal.is_own_function(p.oid) AS own,
       pysafe_internal.clearance(p.oid) AS reason
{_JUDGED_FUNCTIONS}
   AND p.prolang OPERATOR(pg_catalog.=) l.oid
   AND NOT l.lanpltrusted AND l.lanname OPERATOR(pg_catalog.<>) ALL (ARRAY['c', 'internal'])
 ORDER BY p.oid::pg_catalog.regprocedure::pg_catalog.text
""".replace("FROM pg_catalog.pg_proc p", "FROM pg_catalog.pg_language l, pg_catalog.pg_proc p", 1)

UNREVIEWED_EFFECT = "not reviewed: a volatile C function, which may write"
OWN_FUNCTION_EFFECT = "pysafe's own (a member of the pysafe extension owned by a superuser)"
UNCLEARED_EFFECT = (
    "untrusted language {language}, not cleared: may write anything, whatever its volatility"
    " (pysafe.clear_function() clears it)"
)


def function_review(plpy: Any) -> list[tuple[int, str, str, str]]:
    """Rows of pysafe.function_review(): the reviewed built-ins this server has,
    then this database's functions the shim judges by the code they run: C
    functions (volatile, or a refused library and symbol), internal-language
    functions under another name, and functions in untrusted languages."""
    from pysafe.policy.extension_functions import refused_review_of, review_of  # noqa: PLC0415
    from pysafe.policy.functions import CLEARED_FUNCTIONS, WRITING_FUNCTIONS  # noqa: PLC0415

    plan = plpy.prepare(
        "SELECT pg_catalog.to_regprocedure($1)::pg_catalog.oid AS fn", ["pg_catalog.text"]
    )
    rows = []
    listed: dict[str, set[int]] = {"refused": set(), "allowed": set()}
    for verdict, reviews in (("refused", WRITING_FUNCTIONS), ("allowed", CLEARED_FUNCTIONS)):
        for review in reviews:
            fn = plpy.execute(plan, [review.signature])[0]["fn"]
            if fn is not None:
                rows.append((fn, verdict, review.effect, "built-in"))
                listed[verdict].add(int(fn))
    for row in plpy.execute(C_FUNCTIONS_QUERY):
        source = row["extname"] or "no extension"
        refused = refused_review_of(row["probin"], row["prosrc"])
        extension = review_of(row["probin"], row["prosrc"])
        if refused is not None:
            rows.append((row["oid"], "refused", refused.effect, source))
        elif not row["volatile"]:
            continue  # not volatile, not a reviewed writer: allowed, not listed
        elif extension is None:
            rows.append((row["oid"], "refused", UNREVIEWED_EFFECT, source))
        else:
            verdict = "allowed" if extension.cleared else "refused"
            rows.append((row["oid"], verdict, extension.effect, source))
    for row in plpy.execute(INTERNAL_ALIASES_QUERY):
        # As the installer's refused_builtins file has it: a built-in with the
        # same entry point is a listed writer, or volatile and not cleared.
        source = row["extname"] or "no extension"
        effect = f"runs built-in {row['prosrc']}"
        volatile = {int(oid) for oid in row["volatile_builtins"]}
        if not row["builtins"]:
            continue  # no such entry point: fmgr refuses to bind it
        if listed["refused"] & {int(oid) for oid in row["builtins"]} or (
            volatile - listed["allowed"]
        ):
            rows.append((row["oid"], "refused", f"{effect}, which the review refuses", source))
        else:
            rows.append((row["oid"], "allowed", f"{effect}, which the review clears", source))
    for row in plpy.execute(UNTRUSTED_FUNCTIONS_QUERY):
        source = row["extname"] or "no extension"
        if row["own"]:
            rows.append((row["oid"], "allowed", OWN_FUNCTION_EFFECT, source))
        elif row["reason"] is not None:
            rows.append((row["oid"], "allowed", f"cleared by a superuser: {row['reason']}", source))
        else:
            effect = UNCLEARED_EFFECT.format(language=row["lanname"])
            rows.append((row["oid"], "refused", effect, source))
    return rows


CHECK_ROLE_QUERY = """
SELECT pysafe_internal.restriction_path(pysafe_internal.existing_role($1)) AS path,
       pysafe_internal.shim_settings_flags() AS flags
"""

# What each function a call fact names is: the body only for SQL and
# PL/pgSQL functions users made (built-in ones never write).
FUNCTION_COLUMNS = """
       p.oid::pg_catalog.regprocedure::pg_catalog.text AS name,
       p.provolatile OPERATOR(pg_catalog.=) 'v' AS volatile, l.lanname::pg_catalog.text AS language,
       CASE WHEN l.lanname OPERATOR(pg_catalog.=) ANY (ARRAY['sql', 'plpgsql']::pg_catalog.name[])
             AND p.oid OPERATOR(pg_catalog.>=) 16384
            THEN pg_catalog.pg_get_functiondef(p.oid) END AS definition
"""
STATEMENT_CALLS_QUERY = f"""
SELECT {FUNCTION_COLUMNS}, c.rule, c.detail
  FROM pysafe_internal.statement_calls($1, $2) c
  JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) c.fn
  JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
"""
FUNCTIONS_NAMED_QUERY = f"""
SELECT {FUNCTION_COLUMNS}, r[1] AS rule, r[2] AS detail
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang
  CROSS JOIN LATERAL pysafe_internal.function_refusal(p.oid, $3) r
 WHERE p.proname OPERATOR(pg_catalog.=) $1
   AND CASE WHEN $2 IS NULL
            THEN n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(true))
            ELSE n.nspname OPERATOR(pg_catalog.=) $2 END
"""


def called_function(row: dict[str, Any]) -> CalledFunction:
    return CalledFunction(
        name=row["name"],
        rule=row["rule"],
        detail=row["detail"],
        volatile=bool(row["volatile"]),
        language=row["language"],
        definition=row["definition"],
    )


class ServerCallFacts:
    """Call facts from the shim (installer/calls.c) and pg_proc, through plpy."""

    def __init__(self, plpy: Any, settings: PolicySettings) -> None:
        self._plpy = plpy
        self._block_all = settings.block_all_c_functions

    def statement_calls(self, sql: str) -> list[CalledFunction]:
        plan = prepared(self._plpy, STATEMENT_CALLS_QUERY, ["pg_catalog.text", "pg_catalog.bool"])
        merged: dict[str, CalledFunction] = {}
        for row in self._plpy.execute(plan, [sql, self._block_all]):
            # A function may be both announced and bound: a refusal of either counts.
            if row["name"] not in merged or row["rule"] is not None:
                merged[row["name"]] = called_function(row)
        return list(merged.values())

    def functions_named(self, name: tuple[str, ...]) -> list[CalledFunction]:
        plan = prepared(
            self._plpy,
            FUNCTIONS_NAMED_QUERY,
            ["pg_catalog.name", "pg_catalog.name", "pg_catalog.bool"],
        )
        schema = name[-2] if len(name) > 1 else None
        rows = self._plpy.execute(plan, [name[-1], schema, self._block_all])
        return [called_function(row) for row in rows]


CheckRow = tuple[str, str, str, str | None, str | None]

# The detail of an "unknown" row whose calls nest too deeply to follow.
TOO_DEEP_STATEMENT = (
    "the statement nests too deeply for pysafe.check() to follow its calls; split it"
    " into smaller parts to have them checked (it still meets every check as it runs)"
)

# What the DETAIL of each of the shim's function refusals says
# (installer/functions.c), and the rule each is logged under.
SHIM_REFUSAL_RULES = (
    ("C-language.", "c_functions"),
    ("untrusted-language", "untrusted_functions"),
    ("does not clear (pysafe/policy/functions.py).", "builtin_functions"),
)


def shim_refusal_rule(detail: str | None) -> str:
    """The rule of a function refusal the shim raised, from its DETAIL."""
    for marker, rule in SHIM_REFUSAL_RULES:
        if marker in (detail or ""):
            return rule
    return "refused_while_planning"


def check(sql: str, role: str, plpy: Any) -> list[CheckRow]:
    """Rows of pysafe.check(): what running each statement as ``role`` leads to.

    The statement policy first (as the shim asks it); then, for what it
    allows, the function checks the shim applies when the plan starts, and
    the statements the called functions' bodies run (pysafe.policy.calls).
    """
    if len(sql.encode()) > MAX_DECIDED_BYTES:  # bytes, as the shim counts them
        plpy.error(
            f"the SQL given to pysafe.check() is longer than {MAX_DECIDED_BYTES // 1024} kB,"
            " the most pysafe's policy reads",
            hint="Check it in smaller parts; a restricted session's statement of this size"
            " is refused unless it is a query, which takes the shim's fast path.",
            sqlstate="54000",
        )
    row = plpy.execute(plpy.prepare(CHECK_ROLE_QUERY, ["pg_catalog.name"]), [role])[0]
    settings = PolicySettings.from_flags(row["flags"])
    facts = ServerCatalogFacts(plpy)
    try:
        results = decide_text(sql, settings, facts, while_waiting=interrupt_taker(plpy))
    except StatementTooDeep:
        plpy.error(
            "the SQL given to pysafe.check() nests too deeply to check",
            hint="Split the expression or the query into smaller parts; a restricted"
            " session's statement that nests this deeply is refused.",
            sqlstate="54001",
        )
    except ParseError as error:
        message, index = error.args
        plpy.error(
            f"the SQL given to pysafe.check() does not parse: {message}",
            detail=f"The parser stopped at character {index + 1} of the text.",
            hint="Pass complete SQL statements; the server's own parser reports the same error.",
            sqlstate="42601",
        )
    if row["path"] is None:
        why = f"role {role} is not restricted"
        return [(r.text, "allowed", "unrestricted", why, None) for r in results]
    reader = CallReader(
        settings,
        ServerCallFacts(plpy, settings),
        lambda stmt, command, s: decide_node(stmt, command, s, facts),
    )
    restricted_through = f"restricted through {row['path']}"
    rows: list[CheckRow] = []
    for result in results:
        verdict = result.verdict
        if not verdict.allowed:
            rows.append(
                (
                    result.text,
                    "refused",
                    verdict.rule,
                    verdict.message,
                    verdict.detail or restricted_through,
                )
            )
            continue
        try:
            with plpy.subtransaction():
                outcome = reader.statement_outcome(result.text, result.stmt)
        except (StatementTooDeep, RecursionError):
            rows.append((result.text, UNKNOWN, verdict.rule, None, TOO_DEEP_STATEMENT))
            continue
        except plpy.SPIError as error:
            if getattr(error, "sqlstate", None) == READ_ONLY_SQLSTATE:
                # A restricted caller: the shim refused a call while the plan
                # was described, as it refuses it in a plain EXPLAIN.
                # PL/Python keeps DETAIL second in the error's spidata.
                spidata = getattr(error, "spidata", None) or (None, None)
                detail = spidata[1]
                rule = shim_refusal_rule(detail)
                rows.append((result.text, "refused", rule, str(error).strip(), detail))
            else:
                rows.append((result.text, "error", "server_error", str(error).strip(), None))
            continue
        if outcome.verdict is not None:
            refusal = outcome.verdict
            rows.append((result.text, "refused", refusal.rule, refusal.message, refusal.detail))
        elif outcome.unknown is not None:
            rows.append((result.text, UNKNOWN, verdict.rule, None, outcome.unknown))
        else:
            rows.append((result.text, "allowed", verdict.rule, None, restricted_through))
    return rows
