/*-------------------------------------------------------------------------
 *
 * snapshots.c
 *		A bound on the snapshot files a restricted session exports.
 *
 * Each pg_export_snapshot() call writes a file under pg_snapshots/ that
 * stays until the transaction ends, and nothing in PostgreSQL bounds how
 * many one transaction makes.  pg_export_snapshot() is a built-in: fmgr
 * binds it without a hook, and the executor announces it once per plan
 * (object_access_hook, OAT_FUNCTION_EXECUTE), not per call.  So for a
 * restricted session:
 *	- a plan that calls it is refused before it starts when the transaction
 *	  already holds MAX_EXPORTED_SNAPSHOTS files;
 *	- once the transaction has announced it, the files of this backend's
 *	  virtual transaction (their names begin with it) are counted after
 *	  every ExecutorRun and ExecutorFinish and every utility statement (a DO
 *	  block, CALL), and more than MAX_EXPORTED_SNAPSHOTS are refused with
 *	  25006: an ERROR, or in a transaction block, whose abort keeps the
 *	  files until ROLLBACK, the end of the session (FATAL).
 * A snapshot is exported only outside subtransactions, so no EXCEPTION
 * block can catch the refusal and keep the files.  Within one statement the files can exceed the
 * bound until the statement ends (docs/design.md).  pg_dump -j exports one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "executor/executor.h"
#include "storage/fd.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/fmgroids.h"

#include "pysafe.h"

#define MAX_EXPORTED_SNAPSHOTS	4	/* docs/design.md has the same */
#define SNAPSHOT_DIRECTORY		"pg_snapshots"

static object_access_hook_type prev_object_access_hook = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* The local transaction id of the restricted transaction that announced pg_export_snapshot(). */
static LocalTransactionId exporting_transaction = InvalidLocalTransactionId;

/* This backend's local transaction id (its virtual transaction's second half). */
static LocalTransactionId
current_local_transaction(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProc->vxid.lxid;
#else
	return MyProc->lxid;
#endif
}

/* How many snapshot files this backend's current transaction has exported. */
static int
exported_snapshot_files(void)
{
	char		prefix[32];
	size_t		length;
	DIR		   *dir;
	struct dirent *entry;
	int			count = 0;

#if PG_VERSION_NUM >= 170000
	snprintf(prefix, sizeof(prefix), "%08X-%08X-", MyProc->vxid.procNumber, MyProc->vxid.lxid);
#else
	snprintf(prefix, sizeof(prefix), "%08X-%08X-", MyProc->backendId, MyProc->lxid);
#endif
	length = strlen(prefix);
	dir = AllocateDir(SNAPSHOT_DIRECTORY);
	while ((entry = ReadDir(dir, SNAPSHOT_DIRECTORY)) != NULL)
		if (strncmp(entry->d_name, prefix, length) == 0)
			count++;
	FreeDir(dir);
	return count;
}

/*
 * Refuse when this backend's transaction holds more files than allowed.
 * Before a plan starts, no file is over the bound yet: an ERROR aborts the
 * transaction with at most the bound left until its ROLLBACK.  After a run
 * there may be many more, which an aborted transaction block would keep
 * until the client's ROLLBACK; so in a block the session ends (FATAL),
 * which removes them at once.
 */
static void
check_exported_snapshots(int allowed, bool after_run)
{
	char		message[128];
	const char *detail = "Each exported snapshot is a file under pg_snapshots/ until the transaction ends.";

	if (exported_snapshot_files() <= allowed)
		return;
	snprintf(message, sizeof(message),
			 "cannot keep more than %d exported snapshots in a transaction of a read-only session",
			 MAX_EXPORTED_SNAPSHOTS);
	if (!after_run || !IsTransactionBlock())
		pysafe_refuse("FUNCTION pg_export_snapshot", "exported_snapshots", message, detail);
	pysafe_record_refusal("FUNCTION pg_export_snapshot", "exported_snapshots", message);
	ereport(FATAL,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("terminating connection: %s", message),
			 errdetail("%s", detail)));
}

/* After a run: count the files, if this restricted transaction may have exported any. */
static void
check_after_run(void)
{
	if (likely(exporting_transaction == InvalidLocalTransactionId) ||
		exporting_transaction != current_local_transaction() ||
		!IsTransactionState() || IsParallelWorker())
		return;
	check_exported_snapshots(MAX_EXPORTED_SNAPSHOTS, true);
}

/* object_access_hook: note a restricted plan that calls pg_export_snapshot(). */
static void
snapshots_object_access(ObjectAccessType access, Oid classId, Oid objectId,
						int subId, void *arg)
{
	if (access == OAT_FUNCTION_EXECUTE && objectId == F_PG_EXPORT_SNAPSHOT &&
		!IsParallelWorker() && pysafe_restricted_now())
	{
		exporting_transaction = current_local_transaction();
		check_exported_snapshots(MAX_EXPORTED_SNAPSHOTS - 1, false);
	}
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
}

/* ExecutorRun hook: the next one, then the count. */
#if PG_VERSION_NUM >= 180000
static void
snapshots_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count)
{
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count);
	else
		standard_ExecutorRun(queryDesc, direction, count);
	check_after_run();
}
#else
static void
snapshots_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
					  bool execute_once)
{
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
	check_after_run();
}
#endif

/* ExecutorFinish hook: the next one, then the count (AFTER triggers, the rest of a SQL function). */
static void
snapshots_ExecutorFinish(QueryDesc *queryDesc)
{
	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
	check_after_run();
}

/* ProcessUtility hook: the next one, then the count (DO, CALL: PL/pgSQL's simple expressions). */
static void
snapshots_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
	check_after_run();
}

/* Install the hooks, chained with the shim's own. */
void
pysafe_snapshots_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = snapshots_object_access;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = snapshots_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = snapshots_ExecutorFinish;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = snapshots_ProcessUtility;
}
