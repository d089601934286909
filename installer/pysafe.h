/*-------------------------------------------------------------------------
 *
 * pysafe.h
 *		What the files of the pysafe shim share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PYSAFE_H
#define PYSAFE_H

#include "fmgr.h"
#include "nodes/nodes.h"
#include "nodes/plannodes.h"
#include "utils/tuplestore.h"

/* reading.c: the canonical reading of a utility statement's parse tree. */
extern char *pysafe_server_reading(Node *stmt);

/*
 * explain.c: whether a plain EXPLAIN (no ANALYZE) is planning or starting
 * its plan, when the function checks may leave a volatile function for
 * the moment it is actually called.
 */
typedef enum PysafeExplainState
{
	PYSAFE_RUNNING = 0,			/* what is bound or announced may run */
	PYSAFE_EXPLAIN_PLANNING,	/* a plain EXPLAIN plans: non-built-ins are checked when called */
	PYSAFE_EXPLAIN_STARTING		/* its plan starts and evaluates nothing: volatile built-ins cannot run */
} PysafeExplainState;

extern PysafeExplainState pysafe_explain_state(void);
extern PysafeExplainState pysafe_explain_set(PysafeExplainState state);
extern bool pysafe_is_plain_explain(Node *stmt);
extern PysafeExplainState pysafe_explain_state_for_start(PlannedStmt *stmt, int eflags);
extern void pysafe_explain_describe_run(bool describing);

/* functions.c: which functions may have side effects, from the review files. */
typedef enum PysafeFunctionRule
{
	PYSAFE_FUNCTION_ALLOWED = 0,
	PYSAFE_FUNCTION_DEFERRED,	/* refused if called; a plain EXPLAIN binds it only */
	PYSAFE_RULE_C_FUNCTIONS,
	PYSAFE_RULE_UNTRUSTED_FUNCTIONS,
	PYSAFE_RULE_BUILTIN_FUNCTIONS
} PysafeFunctionRule;

/* Room for any refusal detail these functions write. */
#define PYSAFE_DETAIL_SIZE (MAXPGPATH + 4 * NAMEDATALEN + 256)

extern void pysafe_functions_init(void);
extern PysafeFunctionRule pysafe_function_rule(Oid fn_oid, bool block_all_c, bool by_executor,
											   PysafeExplainState explain,
											   char *refusal, Size refusal_size);
extern bool pysafe_builtin_refused(Oid fn_oid, PysafeExplainState explain,
								   char *refusal, Size refusal_size);
extern const char *pysafe_rule_name(PysafeFunctionRule rule);

/* pysafe.c: the materialized result of a set-returning SQL function. */
extern Tuplestorestate *pysafe_begin_set_result(FunctionCallInfo fcinfo, TupleDesc *desc);

/* calls.c: which functions a statement would call (pysafe.check()). */
extern void pysafe_record_call(Oid fn_oid, bool by_executor);

/* verdicts.c: the policy's pure verdicts this backend remembers. */
extern void pysafe_verdicts_init(void);
extern char *pysafe_verdict_question(int flags, const char *command_tag, const char *reading,
									 const char *statement, Size *length);
extern bool pysafe_verdict_remembered(const char *question, Size length);
extern uint64 pysafe_verdict_generation(void);
extern void pysafe_remember_verdict(const char *question, Size length, uint64 generation);
extern void pysafe_forget_verdicts(void);

/* refusals.c: refusal counts per database, role and rule, in shared memory. */
extern void pysafe_refusals_init(void);
extern void pysafe_count_refusal(Oid database, Oid role, const char *rule);

#endif							/* PYSAFE_H */
