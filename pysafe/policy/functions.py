"""Built-in functions that write or have side effects: a reviewed classification.

Built-in functions never reach the shim's fmgr hooks (fmgr resolves them
from a table), and several write even in a read-only transaction (the
large-object functions).  This list is the policy for them; CREATE EXTENSION
stores it in pysafe.blocked_functions, and the shim refuses these functions
for restricted sessions (pysafe.block_c_functions) when the executor binds
them.  Each entry carries a call the tests make, as a restricted role that
has been granted EXECUTE, to prove the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

# Versions differ: a signature the server lacks is skipped when the table is filled.


@dataclass(frozen=True)
class FunctionRule:
    signature: str  # as regprocedure prints it
    effect: str  # what a call changes
    sample: str  # a call the tests make


def _rules(effect: str, *entries: tuple[str, str]) -> tuple[FunctionRule, ...]:
    return tuple(FunctionRule(signature, effect, sample) for signature, sample in entries)


WRITING_FUNCTIONS: tuple[FunctionRule, ...] = (
    *_rules(
        "writes large objects, even in a read-only transaction",
        ("lo_creat(integer)", "SELECT lo_creat(-1)"),
        ("lo_create(oid)", "SELECT lo_create(0)"),
        ("lo_from_bytea(oid,bytea)", "SELECT lo_from_bytea(0, 'x')"),
        ("lo_put(oid,bigint,bytea)", "SELECT lo_put(0, 0, 'x')"),
        ("lo_unlink(oid)", "SELECT lo_unlink(0)"),
        ("lowrite(integer,bytea)", "SELECT lowrite(0, 'x')"),
        ("lo_truncate(integer,integer)", "SELECT lo_truncate(0, 0)"),
        ("lo_truncate64(integer,bigint)", "SELECT lo_truncate64(0, 0)"),
        ("lo_import(text)", "SELECT lo_import('/dev/null')"),
        ("lo_import(text,oid)", "SELECT lo_import('/dev/null', 0)"),
        ("lo_export(oid,text)", "SELECT lo_export(0, '/dev/null')"),
    ),
    *_rules(
        "advances or sets a sequence (not undone by rollback)",
        ("nextval(regclass)", "SELECT nextval('pysafe_probe_seq')"),
        ("setval(regclass,bigint)", "SELECT setval('pysafe_probe_seq', 5)"),
        ("setval(regclass,bigint,boolean)", "SELECT setval('pysafe_probe_seq', 5, true)"),
    ),
    *_rules(
        "writes WAL or server state",
        # PostgreSQL 17 added a "flush" argument; each version has one pair.
        (
            "pg_logical_emit_message(boolean,text,text)",
            "SELECT pg_logical_emit_message(false, 'p', 'x'::text)",
        ),
        (
            "pg_logical_emit_message(boolean,text,bytea)",
            "SELECT pg_logical_emit_message(false, 'p', 'x'::bytea)",
        ),
        (
            "pg_logical_emit_message(boolean,text,text,boolean)",
            "SELECT pg_logical_emit_message(false, 'p', 'x'::text, false)",
        ),
        (
            "pg_logical_emit_message(boolean,text,bytea,boolean)",
            "SELECT pg_logical_emit_message(false, 'p', 'x'::bytea, false)",
        ),
        ("pg_switch_wal()", "SELECT pg_switch_wal()"),
        ("pg_create_restore_point(text)", "SELECT pg_create_restore_point('p')"),
        ("pg_reload_conf()", "SELECT pg_reload_conf()"),
        ("pg_rotate_logfile()", "SELECT pg_rotate_logfile()"),
        ("pg_stat_reset()", "SELECT pg_stat_reset()"),
    ),
    *_rules(
        "ends or interrupts other sessions",
        ("pg_terminate_backend(integer,bigint)", "SELECT pg_terminate_backend(0, 0)"),
        ("pg_cancel_backend(integer)", "SELECT pg_cancel_backend(0)"),
    ),
)


def blocked_signatures() -> list[str]:
    return [rule.signature for rule in WRITING_FUNCTIONS]
