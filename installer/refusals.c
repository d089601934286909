/*-------------------------------------------------------------------------
 *
 * refusals.c
 *		How many refusals pysafe made, per database, role and rule.
 *
 * Every refusal the shim makes (pysafe.c: refuse(), the settings guards,
 * the policy's failures, replication connections, the ends of locked
 * sessions) calls pysafe_count_refusal().  The counts live in a fixed
 * table in shared memory, from server start (or the last
 * pysafe.reset_refusals()); a key the full table has no room for is
 * counted in one overflow row.  pysafe.refusals() reads them.
 *
 * Parallel queries: a refusal in a parallel worker is counted by the
 * worker, not when the leader raises the worker's error again.  Several
 * processes of one query (the workers, and the leader taking part) may
 * reach the same refused call; the query still counts once.  A worker does
 * not count: it leaves its refusal pending under its leader's pid (the
 * first worker only), and the leader settles it when its transaction or
 * subtransaction aborts, which every refusal makes it do: dropped if the
 * leader counted a refusal of its own meanwhile, counted otherwise.
 *
 * Counting never fails a refusal: no allocation, one short lock, and
 * nothing at all when the library was not preloaded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pysafe.h"

#define REFUSAL_ENTRIES		1000	/* (database, role, rule) keys counted one by one */
#define REFUSAL_RULE_BYTES	64		/* a rule is a short identifier ("dml") */
#define PENDING_SLOTS		64		/* leaders with a worker's refusal to settle */
#define OVERFLOW_RULE		"(table full)"
#define LOCK_TRANCHE		"pysafe_refusals"
#define REFUSALS_COLUMNS	5

typedef struct RefusalKey
{
	Oid			database;		/* InvalidOid: none (a physical replication connection) */
	Oid			role;
	char		rule[REFUSAL_RULE_BYTES];
} RefusalKey;

typedef struct RefusalEntry
{
	RefusalKey	key;
	int64		refusals;
	TimestampTz last_refusal;
} RefusalEntry;

/* A parallel worker's refusal, until its leader settles it. */
typedef struct PendingRefusal
{
	int			leader_pid;		/* 0: the slot is free */
	RefusalKey	key;
} PendingRefusal;

typedef struct RefusalCounts
{
	LWLock	   *lock;			/* guards everything below */
	pg_atomic_uint32 pending_count; /* used pending slots; read without the lock */
	int			entry_count;
	RefusalEntry overflow;
	RefusalEntry entries[REFUSAL_ENTRIES];
	PendingRefusal pending[PENDING_SLOTS];
} RefusalCounts;

/* The shared table; NULL when the library was not preloaded. */
static RefusalCounts *counts = NULL;

/* Did this leader count a refusal of its own in parallel mode, not yet settled? */
static bool leader_counted_in_parallel_mode = false;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(pysafe_refusals);
PG_FUNCTION_INFO_V1(pysafe_reset_refusals);

/* Ask for the shared table and its lock (postmaster, before shared memory exists). */
static void
request_shared_table(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(RefusalCounts)));
	RequestNamedLWLockTranche(LOCK_TRANCHE, 1);
}

#if PG_VERSION_NUM >= 150000
/* shmem_request_hook: request_shared_table() after any previous hook. */
static void
refusals_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	request_shared_table();
}
#endif

/* shmem_startup_hook: create the table, or attach to it (EXEC_BACKEND). */
static void
refusals_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	counts = ShmemInitStruct("pysafe refusal counts", sizeof(RefusalCounts), &found);
	if (!found)
	{
		memset(counts, 0, sizeof(RefusalCounts));
		counts->lock = &(GetNamedLWLockTranche(LOCK_TRANCHE))->lock;
		pg_atomic_init_u32(&counts->pending_count, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The key of a refusal, with the rule cut to fit. */
static void
make_key(RefusalKey *key, Oid database, Oid role, const char *rule)
{
	memset(key, 0, sizeof(RefusalKey));
	key->database = database;
	key->role = role;
	if (rule != NULL)
		strncpy(key->rule, rule, sizeof(key->rule) - 1);	/* stays terminated */
}

/* Same database, role and rule?  (make_key zero-fills, so bytes compare.) */
static bool
same_key(const RefusalKey *a, const RefusalKey *b)
{
	return memcmp(a, b, sizeof(RefusalKey)) == 0;
}

/* Add one refusal under key; caller holds the lock exclusively. */
static void
count_locked(const RefusalKey *key, TimestampTz now)
{
	RefusalEntry *entry = NULL;
	int			i;

	for (i = 0; i < counts->entry_count; i++)
	{
		if (same_key(&counts->entries[i].key, key))
		{
			entry = &counts->entries[i];
			break;
		}
	}
	if (entry == NULL && counts->entry_count < REFUSAL_ENTRIES)
	{
		entry = &counts->entries[counts->entry_count++];
		entry->key = *key;
		entry->refusals = 0;
	}
	if (entry == NULL)
		entry = &counts->overflow;
	entry->refusals++;
	entry->last_refusal = now;
}

/*
 * A parallel worker's refusal: leave it pending for the leader, unless a
 * worker of the same leader already did.  Without a free slot it is
 * counted at once (the query may then count twice).  Caller holds the lock.
 */
static void
leave_pending_locked(const RefusalKey *key, int leader_pid, TimestampTz now)
{
	PendingRefusal *free_slot = NULL;
	int			i;

	for (i = 0; i < PENDING_SLOTS; i++)
	{
		if (counts->pending[i].leader_pid == leader_pid)
			return;
		if (free_slot == NULL && counts->pending[i].leader_pid == 0)
			free_slot = &counts->pending[i];
	}
	if (free_slot == NULL)
	{
		count_locked(key, now);
		return;
	}
	free_slot->leader_pid = leader_pid;
	free_slot->key = *key;
	pg_atomic_add_fetch_u32(&counts->pending_count, 1);
}

/*
 * Count one refusal of a session of database and role under rule.  Never
 * raises an error; does nothing without the shared table.
 */
void
pysafe_count_refusal(Oid database, Oid role, const char *rule)
{
	RefusalKey	key;
	TimestampTz now;
	PGPROC	   *leader = MyProc ? MyProc->lockGroupLeader : NULL;

	if (counts == NULL || MyProc == NULL)
		return;
	make_key(&key, database, role, rule);
	now = GetCurrentTimestamp();
	LWLockAcquire(counts->lock, LW_EXCLUSIVE);
	if (IsParallelWorker() && leader != NULL && leader != MyProc)
		leave_pending_locked(&key, leader->pid, now);
	else
	{
		count_locked(&key, now);
		if (IsInParallelMode())
			leader_counted_in_parallel_mode = true;
	}
	LWLockRelease(counts->lock);
}

/*
 * At the abort of a leader's (sub)transaction, settle its workers' pending
 * refusal: count it, unless the leader counted its own refusal since.
 */
static void
settle_pending_refusals(void)
{
	bool		counted_own = leader_counted_in_parallel_mode;
	TimestampTz now;
	int			i;

	leader_counted_in_parallel_mode = false;
	if (counts == NULL || MyProc == NULL || IsParallelWorker() ||
		pg_atomic_read_u32(&counts->pending_count) == 0)
		return;
	now = GetCurrentTimestamp();
	LWLockAcquire(counts->lock, LW_EXCLUSIVE);
	for (i = 0; i < PENDING_SLOTS; i++)
	{
		if (counts->pending[i].leader_pid != MyProcPid)
			continue;
		if (!counted_own)
			count_locked(&counts->pending[i].key, now);
		counts->pending[i].leader_pid = 0;
		pg_atomic_sub_fetch_u32(&counts->pending_count, 1);
	}
	LWLockRelease(counts->lock);
}

/* Transaction callback: settle pending refusals at abort. */
static void
refusals_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT)
		settle_pending_refusals();
}

/* Subtransaction callback: settle pending refusals at abort (EXCEPTION blocks). */
static void
refusals_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		settle_pending_refusals();
}

/*
 * From _PG_init: the shared table when preloaded (otherwise refusals are
 * not counted, and pysafe.refusals() says so), and the abort callbacks.
 */
void
pysafe_refusals_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = refusals_shmem_request;
#else
	request_shared_table();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = refusals_shmem_startup;
	RegisterXactCallback(refusals_xact_callback, NULL);
	RegisterSubXactCallback(refusals_subxact_callback, NULL);
}

/* Stop with a clear error when the library was not preloaded. */
static void
require_shared_table(void)
{
	if (counts == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pysafe counts refusals only when loaded through shared_preload_libraries"),
				 errhint("Add pysafe to shared_preload_libraries (python -m pysafe install does) and restart PostgreSQL.")));
}

/* A name column's value, or NULL (isnull) when there is no name. */
static Datum
name_datum(const char *name, bool *isnull)
{
	Name		value;

	*isnull = name == NULL;
	if (name == NULL)
		return (Datum) 0;
	value = (Name) palloc0(NAMEDATALEN);
	namestrcpy(value, name);
	return NameGetDatum(value);
}

/* One row of pysafe.refusals() into the tuplestore. */
static void
put_refusal_row(Tuplestorestate *store, TupleDesc desc, const RefusalEntry *entry, bool overflow)
{
	Datum		values[REFUSALS_COLUMNS];
	bool		nulls[REFUSALS_COLUMNS];

	memset(nulls, 0, sizeof(nulls));
	if (overflow)
	{
		nulls[0] = nulls[1] = true;
		values[2] = CStringGetTextDatum(OVERFLOW_RULE);
	}
	else
	{
		/* NULL for no database, or a database or role dropped since. */
		values[0] = name_datum(OidIsValid(entry->key.database) ?
							   get_database_name(entry->key.database) : NULL, &nulls[0]);
		values[1] = name_datum(GetUserNameFromId(entry->key.role, true), &nulls[1]);
		values[2] = CStringGetTextDatum(entry->key.rule);
	}
	values[3] = Int64GetDatum(entry->refusals);
	values[4] = TimestampTzGetDatum(entry->last_refusal);
	tuplestore_putvalues(store, desc, values, nulls);
}

/*
 * pysafe.refusals(): one row per database, role and rule refused since
 * server start (or the last reset).  The counts are copied under the lock,
 * and names looked up after it.
 */
Datum
pysafe_refusals(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store;
	RefusalEntry *copy;
	RefusalEntry overflow;
	int			count;
	int			i;

	require_shared_table();
	store = pysafe_begin_set_result(fcinfo, &desc);
	copy = palloc(sizeof(RefusalEntry) * REFUSAL_ENTRIES);
	LWLockAcquire(counts->lock, LW_SHARED);
	count = counts->entry_count;
	memcpy(copy, counts->entries, sizeof(RefusalEntry) * count);
	overflow = counts->overflow;
	LWLockRelease(counts->lock);

	for (i = 0; i < count; i++)
		put_refusal_row(store, desc, &copy[i], false);
	if (overflow.refusals > 0)
		put_refusal_row(store, desc, &overflow, true);
	pfree(copy);
	return (Datum) 0;
}

/* pysafe.reset_refusals(): forget every count (EXECUTE is granted to superusers only). */
Datum
pysafe_reset_refusals(PG_FUNCTION_ARGS)
{
	require_shared_table();
	LWLockAcquire(counts->lock, LW_EXCLUSIVE);
	counts->entry_count = 0;
	memset(counts->entries, 0, sizeof(counts->entries));
	memset(&counts->overflow, 0, sizeof(counts->overflow));
	LWLockRelease(counts->lock);
	PG_RETURN_VOID();
}
