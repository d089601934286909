/*-------------------------------------------------------------------------
 *
 * pysafe.h
 *		What the files of the pysafe shim share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PYSAFE_H
#define PYSAFE_H

#include "executor/execdesc.h"
#include "fmgr.h"
#include "nodes/nodes.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"

/* The role pysafe.restrict() grants; always part of the restricted list. */
#define PYSAFE_RESTRICTED_GROUP	"pysafe_restricted"

/* role_list.c: the one reading of the names pysafe.roles lists. */
extern bool pysafe_read_role_list(const char *value, List **names);

/*
 * depth.c: how deeply a utility statement's tree nests.  The policy's bound
 * (pysafe/policy/parsing.py: MAX_TREE_DEPTH and TOO_DEEP_DETAIL have the same;
 * tests/test_parsing.py compares them).
 */
#define PYSAFE_MAX_TREE_DEPTH	5000
#define PYSAFE_TOO_DEEP_DETAIL	"the statement nests too deeply for pysafe to check; split the expression or the query into smaller parts"

typedef enum PysafeDepth
{
	PYSAFE_DEPTH_WITHIN = 0,
	PYSAFE_DEPTH_TOO_DEEP,
	PYSAFE_DEPTH_UNMEASURED		/* part of the tree could not be walked */
} PysafeDepth;

extern PysafeDepth pysafe_statement_depth(Node *stmt, int limit);

/* reading.c: the canonical reading of a utility statement's parse tree. */
extern char *pysafe_server_reading(Node *stmt);
extern bool pysafe_explain_analyzes(ExplainStmt *stmt);

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

/* pysafe.c: the restriction and refusals, for the other files of the shim. */
extern bool pysafe_restricted_now(void);
extern bool pysafe_role_restricted(Oid role);
extern bool pysafe_role_is_or_joins(Oid role, const char *name);
extern uint64 pysafe_restriction_generation(void);
extern bool pysafe_checks_apply(void);
extern void pysafe_record_refusal(const char *kind, const char *rule, const char *message);
extern void pysafe_refuse(const char *kind, const char *rule, const char *message,
						  const char *detail);
extern bool pysafe_is_own_temporary_relation(Oid relid);

/* transitions.c: a session that becomes restricted while open is ended. */
extern void pysafe_transitions_init(void);
extern void pysafe_notice_transitions(bool may_reload);
extern void pysafe_forget_watch(void);
extern void pysafe_note_checked_plan(QueryDesc *queryDesc);
extern bool pysafe_login_may_not_switch(GucSource source);
extern void pysafe_note_identity_request(const char *role_name);
extern bool pysafe_switched_into_restricted(void);

/* parse_locks.c: writes refused before the locks they take are held. */
extern bool pysafe_query_may_write(Query *query);
extern void pysafe_refuse_parse_locks(Query *query, bool block_dml, bool force_read_only,
									  bool allow_temp);
extern bool pysafe_foreign_keys_temporary(CreateStmt *create);

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

/* pysafe.c: what the guards of the other files share with the hooks. */
extern bool pysafe_session_restricted_cached(void);
extern bool pysafe_session_restricted_still(void);
extern bool pysafe_restricted_for_setting_change(void);
extern bool pysafe_refuse_setting_change(const char *name, const char *rule, const char *message);

/* superuser_settings.c: guards of superuser-only and log-writing settings. */
extern void pysafe_superuser_settings_init(void);
extern void pysafe_guard_late_settings(void);
extern void pysafe_note_library_may_load(void);

/* log_guard.c: what reaches the server log (emit_log_hook). */
extern void pysafe_log_guard_init(void);
extern void pysafe_log_refusal_line(const char *object);

/* snapshots.c: exported snapshot files of restricted sessions. */
extern void pysafe_snapshots_init(void);

#endif							/* PYSAFE_H */
