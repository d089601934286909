"""Volatile built-in functions: the reviewed classification.

PostgreSQL marks a function volatile when a call may change something or
answer differently each time.  Built-ins never reach the shim's fmgr hooks
(fmgr finds them in a table), and several write even in a read-only
transaction (the large-object functions), so pysafe reviewed every volatile
built-in that SQL can call (those from the build, below OID 10000), on
each PostgreSQL version it is tested with, and put it in one of two lists:

- WRITING_FUNCTIONS change something beyond the calling session: data,
  catalogs, WAL, server state, other sessions, locks that others wait on,
  the transaction ID counter.  The review goes by effect, not by label: a
  few writers are not volatile (txid_current() is STABLE yet assigns a
  transaction ID), and the shim refuses them all the same.
- CLEARED_FUNCTIONS only read, or change only the calling session's own
  state (its random seed, its settings, its open large-object handles).

The shim lets a restricted session call a volatile built-in only if it is
cleared.  A function that a new PostgreSQL version adds is therefore refused
until it is reviewed here (fail closed), and tests/test_functions.py names it.
The installer lists the OIDs of the server's volatile built-ins that are not
cleared for the shim (pysafe/install/function_review.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# Versions differ: a signature the server lacks is skipped.

# Pseudo-types a probe cannot cast NULL to, and a concrete type to use instead.
PROBE_TYPES = {'"any"': "text", "anyarray": "integer[]", "anyelement": "integer"}


@dataclass(frozen=True)
class FunctionReview:
    """One reviewed built-in, by the signature regprocedure prints."""

    signature: str
    effect: str  # what a call does
    sample: str | None = None  # a real call for the tests; else a NULL-argument probe

    @property
    def probe(self) -> str:
        """A call the tests make as a restricted role."""
        return self.sample or null_argument_call(self.signature)


def null_argument_call(signature: str) -> str:
    """SELECT f((SELECT NULL::t1), ...): reaches the executor, where pysafe checks.

    A plain NULL constant would let the planner fold a strict call away; a
    sub-select keeps the call, which a strict function then answers with NULL.
    """
    name, _, arguments = signature.partition("(")
    types = [t.strip() for t in arguments.rstrip(")").split(",") if t.strip()]
    casts = ", ".join(f"(SELECT NULL::{PROBE_TYPES.get(t, t)})" for t in types)
    return f"SELECT {name}({casts})"


def _group(effect: str, *entries: str | tuple[str, str]) -> tuple[FunctionReview, ...]:
    """Entries sharing an effect: a signature, or (signature, sample call)."""
    return tuple(
        FunctionReview(entry, effect)
        if isinstance(entry, str)
        else FunctionReview(entry[0], effect, entry[1])
        for entry in entries
    )


WRITING_FUNCTIONS: tuple[FunctionReview, ...] = (
    *_group(
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
    *_group(
        "advances or sets a sequence (not undone by rollback)",
        ("nextval(regclass)", "SELECT nextval('pysafe_probe_seq')"),
        ("setval(regclass,bigint)", "SELECT setval('pysafe_probe_seq', 5)"),
        ("setval(regclass,bigint,boolean)", "SELECT setval('pysafe_probe_seq', 5, true)"),
    ),
    *_group(
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
    *_group(
        # STABLE, yet each call in a new transaction consumes a transaction ID:
        # a loop of them brings the cluster toward wraparound.
        "assigns a transaction ID (reviewed by effect: the function is not volatile)",
        ("txid_current()", "SELECT txid_current()"),
        ("pg_current_xact_id()", "SELECT pg_current_xact_id()"),
    ),
    *_group(
        "ends or interrupts other sessions",
        ("pg_terminate_backend(integer,bigint)", "SELECT pg_terminate_backend(0, 0)"),
        ("pg_cancel_backend(integer)", "SELECT pg_cancel_backend(0)"),
    ),
    *_group(
        "writes WAL, or changes server state or the server log",
        "pg_rotate_logfile_old()",
        "pg_log_standby_snapshot()",
        "pg_backup_start(text,boolean)",
        "pg_backup_stop(boolean)",
        "pg_promote(boolean,integer)",
        "pg_wal_replay_pause()",
        "pg_wal_replay_resume()",
        "pg_log_backend_memory_contexts(integer)",
        "pg_nextoid(regclass,name,regclass)",
        "pg_stop_making_pinned_objects()",
    ),
    *_group(
        "resets or rewrites statistics that the planner or monitoring use",
        "pg_stat_reset_backend_stats(integer)",
        "pg_stat_reset_replication_slot(text)",
        "pg_stat_reset_shared(text)",
        "pg_stat_reset_single_function_counters(oid)",
        "pg_stat_reset_single_table_counters(oid)",
        "pg_stat_reset_slru(text)",
        "pg_stat_reset_subscription_stats(oid)",
        "pg_clear_attribute_stats(text,text,text,boolean)",
        "pg_clear_relation_stats(text,text)",
        'pg_restore_attribute_stats("any")',
        'pg_restore_relation_stats("any")',
    ),
    *_group(
        "writes index pages",
        "brin_summarize_new_values(regclass)",
        "brin_summarize_range(regclass,bigint)",
        "brin_desummarize_range(regclass,bigint)",
        "gin_clean_pending_list(regclass)",
    ),
    *_group(
        "writes catalogs (extension scripts, initdb and pg_upgrade only)",
        "pg_extension_config_dump(regclass,text)",
        "pg_import_system_collations(regnamespace)",
        'binary_upgrade_add_sub_rel_state(text,oid,"char",pg_lsn)',
        "binary_upgrade_create_empty_extension(text,text,boolean,text,oid[],text[],text[])",
        "binary_upgrade_logical_slot_has_caught_up(name)",
        "binary_upgrade_replorigin_advance(text,pg_lsn)",
        "binary_upgrade_set_missing_value(oid,text,text)",
        "binary_upgrade_set_next_array_pg_type_oid(oid)",
        "binary_upgrade_set_next_attribute_versions(pg_lsn[])",
        "binary_upgrade_set_next_heap_pg_class_oid(oid)",
        "binary_upgrade_set_next_heap_relfilenode(oid)",
        "binary_upgrade_set_next_index_pg_class_oid(oid)",
        "binary_upgrade_set_next_index_relfilenode(oid)",
        "binary_upgrade_set_next_multirange_array_pg_type_oid(oid)",
        "binary_upgrade_set_next_multirange_pg_type_oid(oid)",
        "binary_upgrade_set_next_pg_authid_oid(oid)",
        "binary_upgrade_set_next_pg_enum_oid(oid)",
        "binary_upgrade_set_next_pg_tablespace_oid(oid)",
        "binary_upgrade_set_next_pg_type_oid(oid)",
        "binary_upgrade_set_next_toast_pg_class_oid(oid)",
        "binary_upgrade_set_next_toast_relfilenode(oid)",
        "binary_upgrade_set_record_init_privs(boolean)",
    ),
    *_group(
        "creates, drops, advances or consumes replication slots",
        "pg_create_physical_replication_slot(name,boolean,boolean)",
        "pg_create_logical_replication_slot(name,name,boolean,boolean)",
        "pg_create_logical_replication_slot(name,name,boolean,boolean,boolean)",
        "pg_copy_logical_replication_slot(name,name)",
        "pg_copy_logical_replication_slot(name,name,boolean)",
        "pg_copy_logical_replication_slot(name,name,boolean,name)",
        "pg_copy_physical_replication_slot(name,name)",
        "pg_copy_physical_replication_slot(name,name,boolean)",
        "pg_drop_replication_slot(name)",
        "pg_replication_slot_advance(name,pg_lsn)",
        "pg_sync_replication_slots()",
        # Variadic: the probe leaves the options out.
        (
            "pg_logical_slot_get_changes(name,pg_lsn,integer,text[])",
            "SELECT pg_logical_slot_get_changes((SELECT NULL::name), NULL, NULL)",
        ),
        (
            "pg_logical_slot_get_binary_changes(name,pg_lsn,integer,text[])",
            "SELECT pg_logical_slot_get_binary_changes((SELECT NULL::name), NULL, NULL)",
        ),
    ),
    *_group(
        # Peeking consumes nothing, yet it holds the slot (its consumer fails
        # meanwhile), moves the slot's last-activity time, which keeps WAL
        # from idle_replication_slot_timeout, and writes snapshot and spill files.
        "decodes a replication slot's changes: holds the slot and writes files",
        (
            "pg_logical_slot_peek_changes(name,pg_lsn,integer,text[])",
            "SELECT pg_logical_slot_peek_changes((SELECT NULL::name), NULL, NULL)",
        ),
        (
            "pg_logical_slot_peek_binary_changes(name,pg_lsn,integer,text[])",
            "SELECT pg_logical_slot_peek_binary_changes((SELECT NULL::name), NULL, NULL)",
        ),
    ),
    *_group(
        "creates, drops or advances replication origins",
        "pg_replication_origin_create(text)",
        "pg_replication_origin_drop(text)",
        "pg_replication_origin_advance(text,pg_lsn)",
        "pg_replication_origin_session_setup(text)",
        "pg_replication_origin_xact_setup(pg_lsn,timestamp with time zone)",
    ),
    *_group(
        "takes an advisory lock that other sessions' jobs wait on",
        "pg_advisory_lock(bigint)",
        "pg_advisory_lock(integer,integer)",
        "pg_advisory_lock_shared(bigint)",
        "pg_advisory_lock_shared(integer,integer)",
        "pg_advisory_xact_lock(bigint)",
        "pg_advisory_xact_lock(integer,integer)",
        "pg_advisory_xact_lock_shared(bigint)",
        "pg_advisory_xact_lock_shared(integer,integer)",
        "pg_try_advisory_lock(bigint)",
        "pg_try_advisory_lock(integer,integer)",
        "pg_try_advisory_lock_shared(bigint)",
        "pg_try_advisory_lock_shared(integer,integer)",
        "pg_try_advisory_xact_lock(bigint)",
        "pg_try_advisory_xact_lock(integer,integer)",
        "pg_try_advisory_xact_lock_shared(bigint)",
        "pg_try_advisory_xact_lock_shared(integer,integer)",
    ),
)

CLEARED_FUNCTIONS: tuple[FunctionReview, ...] = (
    *_group(
        "random values, clocks and sleeping",
        "random()",
        "random(bigint,bigint)",
        "random(integer,integer)",
        "random(numeric,numeric)",
        "random_normal(double precision,double precision)",
        "setseed(double precision)",
        "array_sample(anyarray,integer)",
        "array_shuffle(anyarray)",
        "gen_random_uuid()",
        "uuidv4()",
        "uuidv7()",
        "uuidv7(interval)",
        "clock_timestamp()",
        "timeofday()",
        "pg_sleep(double precision)",
        "pg_sleep_for(interval)",
        "pg_sleep_until(timestamp with time zone)",
    ),
    *_group(
        "changes only the calling session's own state",
        # The shim's check hooks refuse the protected settings on this path.
        "set_config(text,text,boolean)",
        "current_query()",
        "currval(regclass)",
        "lastval()",
        "pg_advisory_unlock(bigint)",
        "pg_advisory_unlock(integer,integer)",
        "pg_advisory_unlock_shared(bigint)",
        "pg_advisory_unlock_shared(integer,integer)",
        "pg_advisory_unlock_all()",
        "pg_stat_clear_snapshot()",
        "pg_stat_force_next_flush()",
        # Writes a snapshot file under pg_snapshots/ that lives until the
        # transaction ends; pg_dump -j needs it to read one consistent state.
        # The shim keeps a restricted transaction to four (installer/snapshots.c).
        "pg_export_snapshot()",
        "pg_replication_origin_session_reset()",
        "pg_replication_origin_xact_reset()",
        "pg_replication_origin_session_is_setup()",
        "pg_replication_origin_session_progress(boolean)",
        # Handles for reading large objects; the writers are listed above.
        "lo_open(oid,integer)",
        "lo_close(integer)",
        "lo_lseek(integer,integer,integer)",
        "lo_lseek64(integer,bigint,integer)",
        "lo_tell(integer)",
        "lo_tell64(integer)",
    ),
    *_group(
        "sends a notification to listeners, as NOTIFY (allowed) does",
        "pg_notify(text,text)",
    ),
    *_group(
        "runs a query, which pysafe's executor checks like any other",
        "cursor_to_xml(refcursor,integer,boolean,boolean,text)",
        "cursor_to_xmlschema(refcursor,boolean,boolean,text)",
        "query_to_xml(text,boolean,boolean,text)",
        "query_to_xml_and_xmlschema(text,boolean,boolean,text)",
        "query_to_xmlschema(text,boolean,boolean,text)",
        "ts_stat(text)",
        "ts_stat(text,text)",
        "ts_rewrite(tsquery,text)",
    ),
    *_group(
        "reads data or catalogs",
        "lo_get(oid)",
        "lo_get(oid,bigint,integer)",
        "loread(integer,integer)",
        "currtid2(text,tid)",
        "pg_sequence_last_value(regclass)",
        "pg_get_sequence_data(regclass)",
        "amvalidate(oid)",
        "pg_partition_ancestors(regclass)",
        "pg_partition_tree(regclass)",
        "pg_collation_actual_version(oid)",
        "pg_database_collation_actual_version(oid)",
        "pg_database_size(name)",
        "pg_database_size(oid)",
        "pg_tablespace_size(name)",
        "pg_tablespace_size(oid)",
        "pg_relation_size(regclass)",
        "pg_relation_size(regclass,text)",
        "pg_table_size(regclass)",
        "pg_indexes_size(regclass)",
        "pg_total_relation_size(regclass)",
        "pg_get_multixact_members(xid)",
        "pg_xact_commit_timestamp(xid)",
        "pg_xact_commit_timestamp_origin(xid)",
        "pg_xact_status(xid8)",
        "txid_status(bigint)",
        "pg_last_committed_xact()",
    ),
    *_group(
        "reads server state (statistics, locks, WAL positions, configuration)",
        "pg_stat_get_xact_blocks_fetched(oid)",
        "pg_stat_get_xact_blocks_hit(oid)",
        "pg_stat_get_xact_function_calls(oid)",
        "pg_stat_get_xact_function_self_time(oid)",
        "pg_stat_get_xact_function_total_time(oid)",
        "pg_stat_get_xact_numscans(oid)",
        "pg_stat_get_xact_tuples_deleted(oid)",
        "pg_stat_get_xact_tuples_fetched(oid)",
        "pg_stat_get_xact_tuples_hot_updated(oid)",
        "pg_stat_get_xact_tuples_inserted(oid)",
        "pg_stat_get_xact_tuples_newpage_updated(oid)",
        "pg_stat_get_xact_tuples_returned(oid)",
        "pg_stat_get_xact_tuples_updated(oid)",
        "pg_stat_get_io()",
        "pg_stat_get_backend_io(integer)",
        "pg_stat_get_backend_wal(integer)",
        "pg_stat_get_recovery_prefetch()",
        "pg_stat_have_stats(text,oid,oid)",
        "pg_stat_have_stats(text,oid,bigint)",
        "pg_lock_status()",
        "pg_blocking_pids(integer)",
        "pg_safe_snapshot_blocking_pids(integer)",
        "pg_isolation_test_session_is_blocked(integer,integer[])",
        "pg_prepared_xact()",
        "pg_notification_queue_usage()",
        "pg_get_backend_memory_contexts()",
        "pg_get_shmem_allocations()",
        "pg_get_shmem_allocations_numa()",
        "pg_get_aios()",
        "pg_get_loaded_modules()",
        "pg_get_wait_events()",
        "pg_control_checkpoint()",
        "pg_control_init()",
        "pg_control_recovery()",
        "pg_control_system()",
        "pg_current_wal_flush_lsn()",
        "pg_current_wal_insert_lsn()",
        "pg_current_wal_lsn()",
        "pg_last_wal_receive_lsn()",
        "pg_last_wal_replay_lsn()",
        "pg_last_xact_replay_timestamp()",
        "pg_is_in_recovery()",
        "pg_is_wal_replay_paused()",
        "pg_get_wal_replay_pause_state()",
        "pg_get_wal_resource_managers()",
        "pg_get_wal_summarizer_state()",
        "pg_available_wal_summaries()",
        "pg_wal_summary_contents(bigint,pg_lsn,pg_lsn)",
        "pg_jit_available()",
        "pg_current_logfile()",
        "pg_current_logfile(text)",
        "pg_hba_file_rules()",
        "pg_ident_file_mappings()",
        "pg_show_all_file_settings()",
        "pg_show_replication_origin_status()",
        "pg_replication_origin_progress(text,boolean)",
    ),
    *_group(
        "reads server files (for roles granted pg_read_server_files or EXECUTE)",
        "pg_ls_dir(text)",
        "pg_ls_dir(text,boolean,boolean)",
        "pg_ls_archive_statusdir()",
        "pg_ls_logdir()",
        "pg_ls_logicalmapdir()",
        "pg_ls_logicalsnapdir()",
        "pg_ls_replslotdir(text)",
        "pg_ls_summariesdir()",
        "pg_ls_tmpdir()",
        "pg_ls_tmpdir(oid)",
        "pg_ls_waldir()",
        "pg_read_file(text)",
        "pg_read_file(text,boolean)",
        "pg_read_file(text,bigint,bigint)",
        "pg_read_file(text,bigint,bigint,boolean)",
        "pg_read_file_old(text,bigint,bigint)",
        "pg_read_binary_file(text)",
        "pg_read_binary_file(text,boolean)",
        "pg_read_binary_file(text,bigint,bigint)",
        "pg_read_binary_file(text,bigint,bigint,boolean)",
        "pg_stat_file(text)",
        "pg_stat_file(text,boolean)",
    ),
)

REVIEWED_FUNCTIONS: tuple[FunctionReview, ...] = WRITING_FUNCTIONS + CLEARED_FUNCTIONS


def cleared_signatures() -> list[str]:
    """The volatile built-ins the shim allows; the installer lists every other one."""
    return [review.signature for review in CLEARED_FUNCTIONS]


def writing_signatures() -> list[str]:
    """The writers, volatile or not; the installer lists each for the shim."""
    return [review.signature for review in WRITING_FUNCTIONS]


def writing_function_names() -> frozenset[str]:
    """Names of the writers, for checks that see calls but not argument types."""
    return frozenset(review.signature.partition("(")[0] for review in WRITING_FUNCTIONS)
