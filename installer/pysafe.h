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
#include "nodes/parsenodes.h"
#include "utils/tuplestore.h"

/* reading.c: the canonical reading of a utility statement's parse tree. */
extern char *pysafe_server_reading(Node *stmt);

/* functions.c: which functions may have side effects, from the review files. */
extern bool pysafe_function_may_write(Oid fn_oid, bool block_all_c, bool by_executor,
									  bool *c_language, char *refusal, Size refusal_size);
extern bool pysafe_builtin_refused(Oid fn_oid, char *refusal, Size refusal_size);

/* pysafe.c: the materialized result of a set-returning SQL function. */
extern Tuplestorestate *pysafe_begin_set_result(FunctionCallInfo fcinfo, TupleDesc *desc);

/* pysafe.c: the read-only-session refusal every check raises, and the temporary-table test. */
extern void pysafe_refuse(const char *kind, const char *rule, const char *message,
						  const char *detail);
extern bool pysafe_is_own_temporary_relation(Oid relid);

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

#endif							/* PYSAFE_H */
