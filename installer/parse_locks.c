/*-------------------------------------------------------------------------
 *
 * parse_locks.c
 *		Writes refused before the locks they take are held: the checks the
 *		shim makes when parse analysis is done, and of a temporary table's
 *		foreign keys.
 *
 * Parse analysis of INSERT, UPDATE, DELETE and MERGE opens the target with
 * ROW EXCLUSIVE, before any permission check and before any other hook:
 * in PREPARE, in a plain EXPLAIN, in the extended protocol's Parse message,
 * in the bodies of SQL functions and PL/pgSQL statements.  None of these
 * runs the statement, so the executor checks never see it, and the lock
 * stays until the transaction ends (a DBA's CREATE INDEX waits behind it,
 * and every writer behind that).  So the shim's post_parse_analyze_hook
 * refuses, right after parse analysis, a query that would write a
 * relation the executor checks or read-only forcing would refuse it: the
 * error aborts the (sub)transaction, which releases the lock.  The rule
 * and wording are those of the executor check in pysafe.c.
 *
 * A foreign key of a temporary table takes SHARE ROW EXCLUSIVE on the
 * table it references, before PostgreSQL checks either privileges or that
 * the referenced table is temporary too; pysafe_foreign_keys_temporary()
 * lets the shim confirm a temporary CREATE TABLE only when every foreign
 * key references one of the session's own temporary tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "nodes/parsenodes.h"
#include "parser/parsetree.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"

#include "pysafe.h"

/* Is the command one that writes its result relation? */
static bool
is_write_command(CmdType command)
{
	return command == CMD_INSERT || command == CMD_UPDATE || command == CMD_DELETE
#if PG_VERSION_NUM >= 150000
		|| command == CMD_MERGE
#endif
		;
}

/* The analyzed query a utility statement carries (EXPLAIN, CREATE TABLE AS, DECLARE), or NULL. */
static Query *
carried_query(Node *utility)
{
	Node	   *query = NULL;

	if (utility == NULL)
		return NULL;
	if (IsA(utility, ExplainStmt))
		query = ((ExplainStmt *) utility)->query;
	else if (IsA(utility, CreateTableAsStmt))
		query = ((CreateTableAsStmt *) utility)->query;
	else if (IsA(utility, DeclareCursorStmt))
		query = ((DeclareCursorStmt *) utility)->query;
	return query != NULL && IsA(query, Query) ? (Query *) query : NULL;
}

/*
 * Could the query write anything: is it a write, does it carry a
 * data-modifying WITH, or does the utility statement it holds carry
 * either?  Cheap, no catalog access: every parse of every session asks.
 */
bool
pysafe_query_may_write(Query *query)
{
	Query	   *carried;

	if (is_write_command(query->commandType) || query->hasModifyingCTE)
		return true;
	carried = query->commandType == CMD_UTILITY ? carried_query(query->utilityStmt) : NULL;
	return carried != NULL && pysafe_query_may_write(carried);
}

/* May a restricted session write this result relation under these settings? */
static bool
target_allowed(Oid relid, bool block_dml, bool force_read_only, bool allow_temp)
{
	bool		temporary = pysafe_is_own_temporary_relation(relid);

	/* The executor check (pysafe.c), then PostgreSQL's own read-only check. */
	if (block_dml && !(allow_temp && temporary))
		return false;
	if (force_read_only && !temporary)
		return false;
	return true;
}

/* Does the query, or one of its WITH clauses (at any depth), write a relation it may not? */
static bool
writes_refused_relation(Query *query, bool block_dml, bool force_read_only, bool allow_temp)
{
	ListCell   *lc;

	if (is_write_command(query->commandType) && query->resultRelation > 0)
	{
		RangeTblEntry *target = rt_fetch(query->resultRelation, query->rtable);

		if (target->rtekind != RTE_RELATION ||
			!target_allowed(target->relid, block_dml, force_read_only, allow_temp))
			return true;
	}
	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

		if (cte->ctequery != NULL && IsA(cte->ctequery, Query) &&
			writes_refused_relation((Query *) cte->ctequery, block_dml, force_read_only,
									allow_temp))
			return true;
	}
	return false;
}

/*
 * Refuse, right after parse analysis, a query of a restricted session that
 * would write a relation the executor check (block_dml; temporary tables
 * under allow_temp_objects) or read-only forcing (permanent relations)
 * refuses; also the query inside EXPLAIN, CREATE TABLE AS and DECLARE.
 * The wording and rule are the executor check's.
 */
void
pysafe_refuse_parse_locks(Query *query, bool block_dml, bool force_read_only, bool allow_temp)
{
	Query	   *carried;
	const char *tag;

	if (query->commandType == CMD_UTILITY)
	{
		carried = carried_query(query->utilityStmt);
		if (carried != NULL)
			pysafe_refuse_parse_locks(carried, block_dml, force_read_only, allow_temp);
		return;
	}
	if (!writes_refused_relation(query, block_dml, force_read_only, allow_temp))
		return;
	tag = GetCommandTagName(CreateCommandTag((Node *) query));
	if (query->commandType != CMD_SELECT)
		pysafe_refuse(tag, "dml", psprintf("cannot execute %s in a read-only session", tag), NULL);
	pysafe_refuse(tag, "modifying_cte",
				  "cannot execute a data-modifying WITH clause in a read-only session", NULL);
}

/*
 * Does a foreign key reference the session's own temporary table: by a name
 * that resolves to one now, or by the name of the table being created, when
 * nothing by that name exists yet (a self-reference)?
 */
static bool
references_temporary(Constraint *constraint, RangeVar *created)
{
	RangeVar   *referenced = constraint->pktable;
	Oid			relid;

	if (referenced == NULL)
		return false;
	relid = RangeVarGetRelid(referenced, NoLock, true);
	if (OidIsValid(relid))
		return pysafe_is_own_temporary_relation(relid);
	return referenced->catalogname == NULL && created != NULL &&
		strcmp(referenced->relname, created->relname) == 0 &&
		(referenced->schemaname == NULL || strcmp(referenced->schemaname, "pg_temp") == 0);
}

/* Is the node (a column or table constraint) a foreign key to anything but a temporary table? */
static bool
is_permanent_reference(Node *node, RangeVar *created)
{
	return node != NULL && IsA(node, Constraint) &&
		((Constraint *) node)->contype == CONSTR_FOREIGN &&
		!references_temporary((Constraint *) node, created);
}

/*
 * Does every foreign key of a CREATE TABLE, column constraint or table
 * constraint, reference one of the session's own temporary tables?  One
 * that references anything else takes SHARE ROW EXCLUSIVE on it before
 * PostgreSQL refuses it (temporary tables may reference only temporary
 * tables), queueing ahead of every writer.
 */
bool
pysafe_foreign_keys_temporary(CreateStmt *create)
{
	ListCell   *lc;
	ListCell   *lc2;

	foreach(lc, create->tableElts)
	{
		Node	   *element = (Node *) lfirst(lc);

		if (is_permanent_reference(element, create->relation))
			return false;
		if (IsA(element, ColumnDef))
		{
			foreach(lc2, ((ColumnDef *) element)->constraints)
			{
				if (is_permanent_reference((Node *) lfirst(lc2), create->relation))
					return false;
			}
		}
	}
	foreach(lc, create->constraints)
	{
		if (is_permanent_reference((Node *) lfirst(lc), create->relation))
			return false;
	}
	return true;
}
