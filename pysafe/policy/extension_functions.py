"""Volatile C functions of common extensions: the reviewed classification.

The shim refuses a restricted session every volatile C-language function,
because PostgreSQL cannot say what one does.  Many extension functions are
volatile only because they return something new each call (random bytes,
UUIDs, statistics), so this review clears those that only compute or only
read, and names the ones that write, reach outside the server or change
shared state, which stay refused.

Extension functions get new OIDs in every database, and their schema is the
DBA's choice, so a review entry names what cannot vary: the shared library
and the C symbol (pg_proc.probin and prosrc).  Only a superuser can declare
a C function, so no restricted role can point a new name at a cleared
symbol.  The installer writes the cleared (library, symbol) pairs where the
shim reads them (pysafe/install/function_review.py); the shim clears a
function only if its library is named as one in the server's own library
folder ("$libdir/pgcrypto"), read as library_name() reads it.

A refused (library, symbol) pair is refused whatever volatility its SQL
declaration claims (the installer lists them too), a volatile C function
that is not reviewed stays refused, and pysafe.block_all_c_functions
refuses every C function, cleared or not.
tests/test_extension_functions.py fails on any volatile C function of a
reviewed extension that this list does not name, so a new extension version
is reviewed before its additions run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtensionFunctionReview:
    """One C symbol of an extension's library, and what calling it does."""

    extension: str
    library: str  # the basename in probin, without "$libdir/" or ".so"
    symbol: str  # prosrc: the C function the SQL functions call
    cleared: bool
    effect: str
    sample: str | None = None  # a call for the tests; else a NULL-argument probe


def _reviews(
    extension: str,
    cleared: bool,
    effect: str,
    *entries: str | tuple[str, str],
    library: str | None = None,
) -> tuple[ExtensionFunctionReview, ...]:
    """Symbols of one extension sharing a verdict: a symbol, or (symbol, sample call)."""
    return tuple(
        ExtensionFunctionReview(
            extension,
            library or extension,
            entry if isinstance(entry, str) else entry[0],
            cleared,
            effect,
            None if isinstance(entry, str) else entry[1],
        )
        for entry in entries
    )


CLEARED, REFUSED = True, False

EXTENSION_FUNCTIONS: tuple[ExtensionFunctionReview, ...] = (
    *_reviews(
        "pgcrypto",
        CLEARED,
        "computes: random bytes, salts, UUIDs, or encryption with a random session key",
        ("pg_random_bytes", "SELECT gen_random_bytes(8)"),
        ("pg_gen_salt", "SELECT gen_salt('bf')"),
        ("pg_gen_salt_rounds", "SELECT gen_salt('bf', 4)"),
        ("pg_random_uuid", "SELECT public.gen_random_uuid()"),
        ("pgp_sym_encrypt_text", "SELECT pgp_sym_encrypt('x', 'key')"),
        ("pgp_sym_encrypt_bytea", "SELECT pgp_sym_encrypt_bytea('x', 'key')"),
        "pgp_pub_encrypt_text",
        "pgp_pub_encrypt_bytea",
    ),
    *_reviews(
        "pgcrypto",
        CLEARED,
        "reads whether OpenSSL runs in FIPS mode",
        ("pg_check_fipsmode", "SELECT fips_mode()"),
    ),
    *_reviews(
        "isn",
        CLEARED,
        "changes the calling session's own isn.weak setting",
        ("accept_weak_input", "SELECT isn_weak(false)"),
    ),
    *_reviews(
        "uuid-ossp",
        CLEARED,
        "computes a new UUID",
        ("uuid_generate_v1", "SELECT uuid_generate_v1()"),
        ("uuid_generate_v1mc", "SELECT uuid_generate_v1mc()"),
        ("uuid_generate_v4", "SELECT uuid_generate_v4()"),
    ),
    *_reviews(
        "tablefunc",
        CLEARED,
        "computes random numbers",
        ("normal_rand", "SELECT count(*) FROM normal_rand(3, 0, 1)"),
    ),
    *_reviews(
        "pg_trgm",
        CLEARED,
        "changes the calling session's own similarity threshold",
        ("set_limit", "SELECT set_limit(0.3)"),
    ),
    *_reviews(
        "pg_stat_statements",
        CLEARED,
        "reads the statement statistics",
        # One symbol per extension version; a database keeps the one it was made with.
        "pg_stat_statements",
        "pg_stat_statements_1_2",
        "pg_stat_statements_1_3",
        "pg_stat_statements_1_8",
        ("pg_stat_statements_1_9", "SELECT count(*) FROM pg_stat_statements"),
        ("pg_stat_statements_1_10", "SELECT count(*) FROM pg_stat_statements"),
        ("pg_stat_statements_1_11", "SELECT count(*) FROM pg_stat_statements"),
        ("pg_stat_statements_1_12", "SELECT count(*) FROM pg_stat_statements"),
        ("pg_stat_statements_info", "SELECT count(*) FROM pg_stat_statements_info"),
    ),
    *_reviews(
        "pg_stat_statements",
        REFUSED,
        "discards statement statistics of every session (shared state)",
        ("pg_stat_statements_reset", "SELECT pg_stat_statements_reset()"),
        ("pg_stat_statements_reset_1_7", "SELECT pg_stat_statements_reset()"),
        ("pg_stat_statements_reset_1_11", "SELECT pg_stat_statements_reset()"),
    ),
    *_reviews(
        "pgstattuple",
        CLEARED,
        "reads a table's or index's pages for statistics",
        ("pgstattuple_v1_5", "SELECT table_len FROM pgstattuple('pg_class')"),
        ("pgstattuplebyid_v1_5", "SELECT table_len FROM pgstattuple('pg_class'::regclass)"),
        ("pgstattuple_approx_v1_5", "SELECT table_len FROM pgstattuple_approx('pg_class')"),
        ("pgstatindex_v1_5", "SELECT version FROM pgstatindex('pg_class_oid_index')"),
        (
            "pgstatindexbyid_v1_5",
            "SELECT version FROM pgstatindex('pg_class_oid_index'::regclass)",
        ),
        ("pg_relpages_v1_5", "SELECT pg_relpages('pg_class')"),
        ("pg_relpagesbyid_v1_5", "SELECT pg_relpages('pg_class'::regclass)"),
        "pgstatginindex_v1_5",
        "pgstathashindex",
    ),
    *_reviews(
        "pg_buffercache",
        CLEARED,
        "reads the shared buffer cache's state",
        ("pg_buffercache_pages", "SELECT count(*) FROM pg_buffercache"),
        ("pg_buffercache_summary", "SELECT buffers_used >= 0 FROM pg_buffercache_summary()"),
        ("pg_buffercache_usage_counts", "SELECT count(*) FROM pg_buffercache_usage_counts()"),
        ("pg_buffercache_numa_pages", "SELECT count(*) >= 0 FROM pg_buffercache_numa"),
    ),
    *_reviews(
        "pg_buffercache",
        REFUSED,
        "evicts pages from the shared buffer cache, which every session shares",
        ("pg_buffercache_evict", "SELECT pg_buffercache_evict(1)"),
        "pg_buffercache_evict_relation",
        ("pg_buffercache_evict_all", "SELECT pg_buffercache_evict_all()"),
    ),
    *_reviews(
        "pg_freespacemap",
        CLEARED,
        "reads a table's free space map",
        ("pg_freespace", "SELECT count(*) FROM pg_freespace('pg_class')"),
    ),
    *_reviews(
        "pg_visibility",
        CLEARED,
        "reads a table's visibility map or pages",
        ("pg_visibility_map", "SELECT all_visible FROM pg_visibility_map('pg_class', 0)"),
        ("pg_visibility_map_rel", "SELECT count(*) FROM pg_visibility_map('pg_class')"),
        (
            "pg_visibility_map_summary",
            "SELECT all_visible >= 0 FROM pg_visibility_map_summary('pg_class')",
        ),
        ("pg_visibility", "SELECT all_visible FROM pg_visibility('pg_class', 0)"),
        ("pg_visibility_rel", "SELECT count(*) FROM pg_visibility('pg_class')"),
        ("pg_check_frozen", "SELECT count(*) FROM pg_check_frozen('pg_class')"),
        ("pg_check_visible", "SELECT count(*) FROM pg_check_visible('pg_class')"),
    ),
    *_reviews(
        "pg_visibility",
        REFUSED,
        "truncates a table's visibility map (writes WAL)",
        ("pg_truncate_visibility_map", "SELECT pg_truncate_visibility_map('pg_class')"),
    ),
    *_reviews(
        "pgrowlocks",
        CLEARED,
        "reads a table's row locks",
        ("pgrowlocks", "SELECT count(*) FROM pgrowlocks('pg_class')"),
    ),
    *_reviews(
        "pageinspect",
        CLEARED,
        "reads or decodes raw pages (superuser-only inside the function)",
        ("get_raw_page_1_9", "SELECT length(get_raw_page('pg_class', 0))"),
        ("get_raw_page_fork_1_9", "SELECT length(get_raw_page('pg_class', 'main', 0))"),
        *[
            "brin_metapage_info",
            "brin_page_items",
            "brin_page_type",
            "brin_revmap_data",
            "bt_metap",
            "bt_page_items_bytea",
            "bt_page_items_1_9",
            "bt_page_stats_1_9",
            "bt_multi_page_stats",
            "fsm_page_contents",
            "gin_leafpage_items",
            "gin_metapage_info",
            "gin_page_opaque_info",
            "gist_page_items",
            "gist_page_items_bytea",
            "gist_page_opaque_info",
            "hash_bitmap_info",
            "hash_metapage_info",
            "hash_page_items",
            "hash_page_stats",
            "hash_page_type",
            "heap_page_items",
            "heap_tuple_infomask_flags",
            "page_checksum_1_9",
            "page_header",
            "tuple_data_split",
        ],
    ),
    *_reviews(
        "amcheck",
        CLEARED,
        "reads an index or table to verify it, under the lock a reader takes",
        (
            "bt_index_check",
            "SELECT bt_index_check('pg_class_oid_index')",
        ),
        "verify_heapam",
        "gin_index_check",
    ),
    *_reviews(
        "amcheck",
        REFUSED,
        "holds a SHARE lock on the table, which blocks every writer until the check ends",
        (
            "bt_index_parent_check",
            "SELECT bt_index_parent_check('pg_class_oid_index')",
        ),
    ),
    *_reviews(
        "pg_walinspect",
        CLEARED,
        "reads WAL records",
        "pg_get_wal_record_info",
        "pg_get_wal_records_info",
        "pg_get_wal_records_info_till_end_of_wal",
        "pg_get_wal_stats",
        "pg_get_wal_stats_till_end_of_wal",
        "pg_get_wal_block_info",
    ),
    *_reviews(
        "pg_logicalinspect",
        CLEARED,
        "reads logical decoding snapshot files",
        "pg_get_logical_snapshot_meta",
        "pg_get_logical_snapshot_info",
    ),
    *_reviews(
        "old_snapshot",
        CLEARED,
        "reads the old-snapshot time map",
        ("pg_old_snapshot_time_mapping", "SELECT count(*) FROM pg_old_snapshot_time_mapping()"),
    ),
    *_reviews(
        "sslinfo",
        CLEARED,
        "reads the calling session's SSL state",
        ("ssl_is_used", "SELECT ssl_is_used()"),
        *[
            "ssl_cipher",
            "ssl_client_cert_present",
            "ssl_client_dn",
            "ssl_client_dn_field",
            "ssl_client_serial",
            "ssl_extension_info",
            "ssl_issuer_dn",
            "ssl_issuer_field",
            "ssl_version",
        ],
    ),
    *_reviews(
        "adminpack",
        CLEARED,
        "lists the server log folder",
        "pg_logdir_ls_v1_1",
    ),
    *_reviews(
        "adminpack",
        REFUSED,
        "writes, renames, syncs or deletes server files",
        ("pg_file_write_v1_1", "SELECT pg_file_write('pysafe_probe', 'x', false)"),
        "pg_file_rename_v1_1",
        "pg_file_unlink_v1_1",
        "pg_file_sync",
    ),
    *_reviews(
        "pg_prewarm",
        REFUSED,
        "loads pages into the shared buffer cache or writes its dump file (shared state)",
        ("pg_prewarm", "SELECT pg_prewarm('pg_class')"),
        "autoprewarm_dump_now",
        "autoprewarm_start_worker",
    ),
    *_reviews(
        "pg_surgery",
        REFUSED,
        "rewrites heap tuples",
        "heap_force_freeze",
        "heap_force_kill",
    ),
    *_reviews(
        "dblink",
        CLEARED,
        # dblink.c: get_sql_insert/update read the source row with a SELECT
        # through SPI (which meets every check) and build the statement's
        # text, never running it; get_sql_delete only builds text.
        "builds the text of an INSERT, UPDATE or DELETE from a local row, without running it",
        (
            "dblink_build_sql_insert",
            "SELECT dblink_build_sql_insert('pg_class', '1', 1, '{1259}', '{99}') IS NOT NULL",
        ),
        "dblink_build_sql_update",
        "dblink_build_sql_delete",
    ),
    *_reviews(
        "dblink",
        CLEARED,
        "reads the catalogs, the current statement's text or the session's own connection names",
        ("dblink_get_pkey", "SELECT count(*) FROM dblink_get_pkey('pg_class')"),
        ("dblink_current_query", "SELECT dblink_current_query() IS NOT NULL"),
        ("dblink_get_connections", "SELECT dblink_get_connections() IS NULL"),
    ),
    *_reviews(
        "dblink",
        REFUSED,
        "connects to another server, where the statements it sends are not read-only",
        ("dblink_connect", "SELECT dblink_connect('pysafe_probe', 'dbname=postgres')"),
        ("dblink_exec", "SELECT dblink_exec('dbname=postgres', 'SELECT 1')"),
        ("dblink_record", "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)"),
        *[
            "dblink_cancel_query",
            "dblink_close",
            "dblink_disconnect",
            "dblink_error_message",
            "dblink_fdw_validator",
            "dblink_fetch",
            "dblink_get_notify",
            "dblink_get_result",
            "dblink_is_busy",
            "dblink_open",
            "dblink_send_query",
        ],
    ),
    *_reviews(
        "postgres_fdw",
        CLEARED,
        # connection.c: walks the session's own connection cache; 1.2's
        # check_conn polls the socket for a closed peer, sending nothing.
        "lists the calling session's own cached connections",
        ("postgres_fdw_get_connections", "SELECT count(*) FROM postgres_fdw_get_connections()"),
        "postgres_fdw_get_connections_1_2",
    ),
    *_reviews(
        "postgres_fdw",
        REFUSED,
        "manages connections to other servers",
        "postgres_fdw_disconnect",
        "postgres_fdw_disconnect_all",
        "postgres_fdw_validator",
        "postgres_fdw_handler",
    ),
    *_reviews(
        "file_fdw",
        REFUSED,
        "validates foreign-table options or hands the planner its callbacks",
        "file_fdw_validator",
        "file_fdw_handler",
    ),
    *_reviews(
        "xml2",
        REFUSED,
        "runs XSLT, which can fetch files and URLs from the server",
        "xslt_process",
        library="pgxml",
    ),
    *_reviews(
        "plpgsql",
        REFUSED,
        "validates a function body (called by CREATE FUNCTION)",
        "plpgsql_validator",
    ),
    *_reviews(
        "plpython3u",
        REFUSED,
        "validates a function body (called by CREATE FUNCTION)",
        "plpython3_validator",
        library="plpython3",
    ),
    *_reviews(
        "pysafe",
        REFUSED,
        "forgets the server's refusal counts (shared state)",
        ("pysafe_reset_refusals", "SELECT pysafe.reset_refusals()"),
    ),
)


LIBRARY_SUFFIX = ".so"


def library_name(probin: str | None) -> str | None:
    """The library of a C function as the review names it: "$libdir/pgcrypto"
    and "pgcrypto.so" are "pgcrypto"; a path elsewhere is None (never cleared).
    installer/functions.c reads probin the same way."""
    if probin is None:
        return None
    name = probin.removeprefix("$libdir/")
    if not name or "/" in name:
        return None
    if len(name) > len(LIBRARY_SUFFIX) and name.endswith(LIBRARY_SUFFIX):
        name = name[: -len(LIBRARY_SUFFIX)]
    return name


def library_base_name(probin: str) -> str:
    """The library's last path component without ".so": how the shim matches
    refused pairs, so no path hides a refused symbol (installer/functions.c)."""
    name = probin.rsplit("/", 1)[-1]
    if len(name) > len(LIBRARY_SUFFIX) and name.endswith(LIBRARY_SUFFIX):
        name = name[: -len(LIBRARY_SUFFIX)]
    return name


def refused_review_of(probin: str | None, symbol: str) -> ExtensionFunctionReview | None:
    """The review entry refusing a C function's library and symbol, if any:
    refused whatever the function's declared volatility."""
    if probin is None:
        return None
    review = REVIEWS_BY_KEY.get((library_base_name(probin), symbol))
    return review if review is not None and not review.cleared else None


def review_of(probin: str | None, symbol: str) -> ExtensionFunctionReview | None:
    """The review entry of a C function, or None if the review does not name it."""
    library = library_name(probin)
    return REVIEWS_BY_KEY.get((library, symbol)) if library is not None else None


def cleared_c_symbols() -> list[tuple[str, str]]:
    """(library, symbol) of every cleared extension function, for the shim."""
    return sorted({(r.library, r.symbol) for r in EXTENSION_FUNCTIONS if r.cleared})


def refused_c_symbols() -> list[tuple[str, str]]:
    """(library, symbol) of every refused extension function: the shim refuses
    them whatever a declaration says of their volatility."""
    return sorted({(r.library, r.symbol) for r in EXTENSION_FUNCTIONS if not r.cleared})


def reviewed_extensions() -> frozenset[str]:
    """The extensions whose every volatile C function the review names."""
    return frozenset(review.extension for review in EXTENSION_FUNCTIONS)


REVIEWS_BY_KEY: dict[tuple[str, str], ExtensionFunctionReview] = {
    (review.library, review.symbol): review for review in EXTENSION_FUNCTIONS
}
