/*-------------------------------------------------------------------------
 *
 * calls.c
 *		Which functions a statement would call, and what the shim's function
 *		checks would say of each: the facts behind pysafe.check().
 *
 * pysafe.check() must predict the function checks of pysafe.c, which run
 * when the executor starts a plan and fmgr binds its functions.  So this
 * file does not read the statement a second way: it parses, analyzes,
 * rewrites and plans it as the server would, starts the executor on the
 * plan in EXPLAIN-only mode, as a plain EXPLAIN does, and records every
 * function the hooks are shown.  The hooks keep checking meanwhile: an
 * EXPLAIN-only start still evaluates initial partition pruning, so for a
 * restricted caller a refused call is refused here too, and the caller
 * (pysafe.check()) reports that refusal.  Each recorded function is then
 * judged by the same code the checks use (functions.c).  Whether a rule
 * applies under the current settings is left to the Python caller, as it
 * is to pysafe.c's settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "pysafe.h"

/* One function the hooks were shown, and who showed it. */
typedef struct RecordedCall
{
	Oid			fn_oid;
	bool		by_executor;	/* the executor announced it (object access) */
	PysafeExplainState explain; /* whether a plain EXPLAIN described was planning or starting */
} RecordedCall;

/*
 * The calls recorded while a statement's executor start is watched, kept in
 * the caller's memory: the executor's own is gone by the time they are read.
 */
static List *recorded_calls = NIL;
static MemoryContext record_context = NULL;
static bool collecting = false;

/*
 * Record a function the hooks were shown, if a statement is being watched.
 * The hooks check it all the same: an EXPLAIN-only executor start still
 * evaluates some expressions (initial partition pruning), so a call it
 * announces may run, and a restricted session is refused it here as in a
 * plain EXPLAIN.
 */
void
pysafe_record_call(Oid fn_oid, bool by_executor)
{
	MemoryContext old_context;
	RecordedCall *call;

	if (!collecting)
		return;
	old_context = MemoryContextSwitchTo(record_context);
	call = palloc(sizeof(RecordedCall));
	call->fn_oid = fn_oid;
	call->by_executor = by_executor;
	call->explain = pysafe_explain_state();
	recorded_calls = lappend(recorded_calls, call);
	MemoryContextSwitchTo(old_context);
}

/*
 * Start (and end) the executor on a plan in EXPLAIN-only mode, recording
 * calls.  Unless a plain EXPLAIN is described, the start stands for a run:
 * the checks judge it as one (explain.c).
 */
static void
watch_executor_start(PlannedStmt *plan, const char *sql)
{
	QueryDesc  *query_desc;

	query_desc = CreateQueryDesc(plan, sql, GetActiveSnapshot(), InvalidSnapshot,
								 None_Receiver, NULL, NULL, 0);
	collecting = true;
	pysafe_explain_describe_run(pysafe_explain_state() == PYSAFE_RUNNING);
	PG_TRY();
	{
		ExecutorStart(query_desc, EXEC_FLAG_EXPLAIN_ONLY);
	}
	PG_FINALLY();
	{
		collecting = false;
		pysafe_explain_describe_run(false);
	}
	PG_END_TRY();
	ExecutorEnd(query_desc);
	FreeQueryDesc(query_desc);
}

/*
 * A CALL has no plan: ExecuteCallStmt announces the procedure, binds it and
 * prepares each argument.  Do the same, evaluating nothing.
 */
static void
watch_call(CallStmt *stmt)
{
	FuncExpr   *call = stmt->funcexpr;
	ListCell   *lc;

	collecting = true;
	PG_TRY();
	{
		pysafe_record_call(call->funcid, true);
		pysafe_record_call(call->funcid, false);
		foreach(lc, call->args)
			(void) ExecInitExpr((Expr *) lfirst(lc), NULL);
	}
	PG_FINALLY();
	{
		collecting = false;
	}
	PG_END_TRY();
}

/* Analyze a raw statement as the server does (no parameters). */
static Query *
analyze_statement(RawStmt *raw, const char *sql)
{
#if PG_VERSION_NUM >= 150000
	return parse_analyze_fixedparams(raw, sql, NULL, 0, NULL);
#else
	return parse_analyze(raw, sql, NULL, 0, NULL);
#endif
}

static void watch_query(Query *query, const char *sql);

/* Utility statements that run a query or a procedure: watch it; others run none. */
static void
watch_utility(Node *stmt, const char *sql)
{
	if (pysafe_is_plain_explain(stmt))
	{
		/* Planned and started as the server does a plain EXPLAIN. */
		PysafeExplainState saved = pysafe_explain_set(PYSAFE_EXPLAIN_PLANNING);

		PG_TRY();
		{
			watch_query((Query *) ((ExplainStmt *) stmt)->query, sql);
		}
		PG_FINALLY();
		{
			pysafe_explain_set(saved);
		}
		PG_END_TRY();
	}
	else if (IsA(stmt, ExplainStmt) && IsA(((ExplainStmt *) stmt)->query, Query))
		watch_query((Query *) ((ExplainStmt *) stmt)->query, sql);
	else if (IsA(stmt, DeclareCursorStmt) && IsA(((DeclareCursorStmt *) stmt)->query, Query))
		watch_query((Query *) ((DeclareCursorStmt *) stmt)->query, sql);
	else if (IsA(stmt, CreateTableAsStmt) && IsA(((CreateTableAsStmt *) stmt)->query, Query))
		watch_query((Query *) ((CreateTableAsStmt *) stmt)->query, sql);
	else if (IsA(stmt, CopyStmt) && ((CopyStmt *) stmt)->query != NULL)
	{
		RawStmt    *raw = makeNode(RawStmt);

		raw->stmt = ((CopyStmt *) stmt)->query;
		watch_query(analyze_statement(raw, sql), sql);
	}
	else if (IsA(stmt, CallStmt) && ((CallStmt *) stmt)->funcexpr != NULL)
		watch_call((CallStmt *) stmt);
}

/* Rewrite, plan and start an analyzed query; utility ones by their kind. */
static void
watch_query(Query *query, const char *sql)
{
	List	   *rewritten;
	ListCell   *lc;

	if (query->commandType == CMD_UTILITY)
	{
		watch_utility(query->utilityStmt, sql);
		return;
	}
	rewritten = pg_rewrite_query(copyObject(query));
	foreach(lc, rewritten)
	{
		Query	   *one = lfirst_node(Query, lc);

		if (one->commandType == CMD_UTILITY)
			watch_utility(one->utilityStmt, sql);
		else
			watch_executor_start(pg_plan_query(one, sql, CURSOR_OPT_PARALLEL_OK, NULL), sql);
	}
}

PG_FUNCTION_INFO_V1(pysafe_statement_calls);

/*
 * pysafe_internal.statement_calls(sql text, block_all_c_functions boolean): for the
 * one statement in sql, each function its run would call, with the rule
 * and detail the shim's checks would refuse it with (NULLs if none).
 * Built-ins the review clears are left out; they can never be refused.
 */
Datum
pysafe_statement_calls(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		block_all_c = PG_GETARG_BOOL(1);
	List	   *parsed;
	TupleDesc	tupdesc;
	Tuplestorestate *store = pysafe_begin_set_result(fcinfo, &tupdesc);
	List	   *seen = NIL;
	ListCell   *lc;

	if (collecting)				/* called by what it describes: one list at a time */
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pysafe_internal.statement_calls() cannot run inside a statement it describes")));
	parsed = raw_parser(sql, RAW_PARSE_DEFAULT);
	if (list_length(parsed) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("pysafe_internal.statement_calls() takes exactly one statement, not %d",
						list_length(parsed))));

	recorded_calls = NIL;
	record_context = CurrentMemoryContext;
	PushActiveSnapshot(GetTransactionSnapshot());
	watch_query(analyze_statement(linitial_node(RawStmt, parsed), sql), sql);
	PopActiveSnapshot();

	foreach(lc, recorded_calls)
	{
		RecordedCall *call = (RecordedCall *) lfirst(lc);
		char		detail[PYSAFE_DETAIL_SIZE];
		const char *rule = NULL;
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		char		key[32];

		snprintf(key, sizeof(key), "%u/%d/%d", call->fn_oid, call->by_executor, (int) call->explain);
		if (list_member(seen, makeString(key)))
			continue;
		seen = lappend(seen, makeString(pstrdup(key)));

		if (call->fn_oid < FirstGenbkiObjectId)
		{
			/* The executor announces built-ins; fmgr binds are not checked. */
			if (call->by_executor &&
				pysafe_builtin_refused(call->fn_oid, call->explain, detail, sizeof(detail)))
				rule = "builtin_functions";
		}
		else
			rule = pysafe_rule_name(pysafe_function_rule(call->fn_oid, block_all_c,
														 call->by_executor, call->explain,
														 detail, sizeof(detail)));
		if (rule == NULL && call->fn_oid < FirstGenbkiObjectId)
			continue;
		values[0] = ObjectIdGetDatum(call->fn_oid);
		values[1] = rule ? CStringGetTextDatum(rule) : (Datum) 0;
		values[2] = rule ? CStringGetTextDatum(detail) : (Datum) 0;
		nulls[1] = nulls[2] = rule == NULL;
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	recorded_calls = NIL;
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(pysafe_function_refusal);

/*
 * pysafe_internal.function_refusal(fn regprocedure, block_all_c_functions boolean):
 * the rule and detail the shim's checks would refuse a query's call of fn
 * with, as a two-element array; NULL if they would not.
 */
Datum
pysafe_function_refusal(PG_FUNCTION_ARGS)
{
	Oid			fn_oid = PG_GETARG_OID(0);
	bool		block_all_c = PG_GETARG_BOOL(1);
	char		detail[PYSAFE_DETAIL_SIZE];
	const char *rule = NULL;
	Datum		parts[2];

	if (fn_oid < FirstGenbkiObjectId)
	{
		if (pysafe_builtin_refused(fn_oid, PYSAFE_RUNNING, detail, sizeof(detail)))
			rule = "builtin_functions";
	}
	else
		rule = pysafe_rule_name(pysafe_function_rule(fn_oid, block_all_c, true, PYSAFE_RUNNING,
													 detail, sizeof(detail)));
	if (rule == NULL)
		PG_RETURN_NULL();
	parts[0] = CStringGetTextDatum(rule);
	parts[1] = CStringGetTextDatum(detail);
	PG_RETURN_ARRAYTYPE_P(construct_array(parts, 2, TEXTOID, -1, false, TYPALIGN_INT));
}
