/*-------------------------------------------------------------------------
 *
 * explain.c
 *		Whether a plain EXPLAIN is planning or starting its plan: when the
 *		function checks may leave a volatile function to the moment it is
 *		really called.
 *
 * A plain EXPLAIN (no ANALYZE) plans its query and starts the executor in
 * EXPLAIN-only mode; nothing of the plan is evaluated but what PostgreSQL
 * may evaluate at any time, which is never volatile: the planner's
 * estimates (estimate_expression_value) and initial partition pruning call
 * stable and immutable functions only.  So while it runs, the checks need
 * not refuse a restricted session a volatile function that is only bound
 * (needs_fmgr_hook) or announced (object access):
 *
 *	- a non-built-in one is bound with fmgr's wrapper instead
 *	  (needs_fmgr_hook answers true), whose fmgr_hook FHET_START checks it
 *	  in full should anything call it after all;
 *	- a built-in one has no such wrapper, so it is let through only while
 *	  the EXPLAIN-only executor start of a plan that evaluates nothing at
 *	  start (no initial pruning, no window aggregate's initial value) runs;
 *	  while planning, an announced built-in is being evaluated (the
 *	  planner's evaluate_expr) and is checked as ever.
 *
 * A function whose entry point the reviews refuse but that is not declared
 * volatile stays refused: those are what the planner may call.  Any other
 * executor start (EXPLAIN ANALYZE, a query a called function runs) is
 * checked in full, and so is pysafe.check()'s description of a statement
 * that is not itself a plain EXPLAIN (calls.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/defrem.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"

#include "pysafe.h"

/* Where this backend is; saved and restored by whoever changes it. */
static PysafeExplainState explain_state = PYSAFE_RUNNING;

/* Is calls.c describing a statement's run (not a plain EXPLAIN's)? */
static bool describing_run = false;

/* The current state, for the function checks. */
PysafeExplainState
pysafe_explain_state(void)
{
	return explain_state;
}

/* Enter a state; returns the one to restore (also on error). */
PysafeExplainState
pysafe_explain_set(PysafeExplainState state)
{
	PysafeExplainState previous = explain_state;

	explain_state = state;
	return previous;
}

/* calls.c: EXPLAIN-only starts describe a run until told otherwise. */
void
pysafe_explain_describe_run(bool describing)
{
	describing_run = describing;
}

/*
 * Is this utility statement a plain EXPLAIN of a query: no ANALYZE (or
 * ANALYZE false), and a query rather than EXECUTE, whose parameters are
 * evaluated, or CREATE TABLE AS / DECLARE, which stay checked in full?
 */
bool
pysafe_is_plain_explain(Node *stmt)
{
	ExplainStmt *explain;
	Query	   *query;

	if (stmt == NULL || !IsA(stmt, ExplainStmt))
		return false;
	explain = (ExplainStmt *) stmt;
	query = (Query *) explain->query;
	if (query == NULL || !IsA(query, Query) || query->commandType == CMD_UTILITY)
		return false;
	return !pysafe_explain_analyzes(explain);
}

/* Does a plan node, or one below it, evaluate something at executor start? */
static bool
plan_evaluates_at_start(Plan *plan)
{
	ListCell   *lc;

	if (plan == NULL)
		return false;
	switch (nodeTag(plan))
	{
		case T_WindowAgg:
			return true;		/* its aggregates' initial values go through input functions */
		case T_Append:
#if PG_VERSION_NUM < 180000
			if (((Append *) plan)->part_prune_info != NULL)
				return true;	/* initial pruning */
#endif
			foreach(lc, ((Append *) plan)->appendplans)
				if (plan_evaluates_at_start((Plan *) lfirst(lc)))
					return true;
			break;
		case T_MergeAppend:
#if PG_VERSION_NUM < 180000
			if (((MergeAppend *) plan)->part_prune_info != NULL)
				return true;
#endif
			foreach(lc, ((MergeAppend *) plan)->mergeplans)
				if (plan_evaluates_at_start((Plan *) lfirst(lc)))
					return true;
			break;
		case T_BitmapAnd:
			foreach(lc, ((BitmapAnd *) plan)->bitmapplans)
				if (plan_evaluates_at_start((Plan *) lfirst(lc)))
					return true;
			break;
		case T_BitmapOr:
			foreach(lc, ((BitmapOr *) plan)->bitmapplans)
				if (plan_evaluates_at_start((Plan *) lfirst(lc)))
					return true;
			break;
		case T_SubqueryScan:
			if (plan_evaluates_at_start(((SubqueryScan *) plan)->subplan))
				return true;
			break;
		case T_CustomScan:
			return true;		/* a provider's code: assume it may */
		default:
			break;
	}
	return plan_evaluates_at_start(plan->lefttree) ||
		plan_evaluates_at_start(plan->righttree);
}

/*
 * The state an executor start with these flags runs in: a plain EXPLAIN's
 * EXPLAIN-only start when nothing of the plan is evaluated at start, the
 * planning state when something may be (built-ins checked as ever), and
 * running for every other start.
 */
PysafeExplainState
pysafe_explain_state_for_start(PlannedStmt *stmt, int eflags)
{
	ListCell   *lc;

	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY) || describing_run)
		return PYSAFE_RUNNING;
#if PG_VERSION_NUM >= 180000
	if (stmt->partPruneInfos != NIL)
		return PYSAFE_EXPLAIN_PLANNING;
#endif
	if (plan_evaluates_at_start(stmt->planTree))
		return PYSAFE_EXPLAIN_PLANNING;
	foreach(lc, stmt->subplans)
		if (plan_evaluates_at_start((Plan *) lfirst(lc)))
			return PYSAFE_EXPLAIN_PLANNING;
	return PYSAFE_EXPLAIN_STARTING;
}
