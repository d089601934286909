/*-------------------------------------------------------------------------
 *
 * pysafe_session.c
 *		Session-start enforcement before PostgreSQL 17, which has no login
 *		event: loaded through session_preload_libraries, it gives restricted
 *		sessions read-only defaults before their first statement.
 *
 * The decision is the shim's (pysafe_session_start in pysafe.c), called
 * through the shim itself, so no restriction logic is duplicated here.  It
 * never keeps anyone out: any error is reported as a WARNING and the session
 * goes on, still under the shim's per-statement checks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

typedef void (*session_start_function) (void);

/*
 * Run the shim's session-start step in a transaction of its own, or, inside
 * the start-up transaction, in a subtransaction, so a failure can be rolled
 * back without harming the session.
 */
static void
run_session_start(bool own_transaction)
{
	session_start_function start;

	start = (session_start_function)
		load_external_function("$libdir/pysafe", "pysafe_session_start", true, NULL);
	if (own_transaction)
		StartTransactionCommand();
	else
		BeginInternalSubTransaction(NULL);
	start();
	if (own_transaction)
		CommitTransactionCommand();
	else
		ReleaseCurrentSubTransaction();
}

void
_PG_init(void)
{
	MemoryContext caller_context = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;

	/*
	 * Some versions load session_preload_libraries inside the start-up
	 * transaction, others after it: use that one, or open our own.
	 */
	bool		own_transaction = !IsTransactionState();

	/* Only in a backend at session start, not in the postmaster. */
	if (!IsUnderPostmaster)
		return;

	PG_TRY();
	{
		run_session_start(own_transaction);
		MemoryContextSwitchTo(caller_context);
		CurrentResourceOwner = caller_owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller_context);
		edata = CopyErrorData();
		FlushErrorState();
		if (own_transaction)
			AbortCurrentTransaction();
		else if (IsSubTransaction())
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_context);
		CurrentResourceOwner = caller_owner;
		ereport(WARNING,
				(errmsg("pysafe_session could not set read-only defaults: %s", edata->message),
				 errhint("The pysafe shim still checks every statement.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}
