/*-------------------------------------------------------------------------
 *
 * reading.c
 *		The server's reading of a statement, for the Python policy to compare.
 *
 * The Python policy parses the statement's text with pglast, and its
 * reading can differ from the server's: standard_conforming_strings off,
 * another grammar version, settings changed between parse and execution.
 * So the shim describes the tree the server will run, in a canonical form
 * that pysafe/policy/reading.py computes from pglast's tree too, and the
 * policy refuses the statement whenever the two differ.  The form holds
 * every fact a rule relies on: the statement kind, COPY's direction and
 * target, EXPLAIN's effective ANALYZE and inner statement, SET's name and
 * values, transaction options, DO's language, LOCK's mode, and the
 * relations of the statements that may write temporary tables.
 *
 * Pure description: no catalog access, no policy.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"

#include "pysafe.h"

/* Append a text as <characters>:<text>, so no value can pass for another. */
static void
append_counted(StringInfo buf, const char *value)
{
	appendStringInfo(buf, "%d:%s", pg_mbstrlen(value), value);
}

/* Append a name in double quotes, inner quotes doubled. */
static void
append_quoted(StringInfo buf, const char *name)
{
	const char *p;

	appendStringInfoChar(buf, '"');
	for (p = name; *p; p++)
	{
		if (*p == '"')
			appendStringInfoChar(buf, '"');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
}

/* Append a relation as <persistence>:"catalog"."schema"."name" (parts present). */
static void
append_range_var(StringInfo buf, RangeVar *rel)
{
	bool		first = true;
	const char *parts[3];
	int			i;

	if (rel == NULL)
	{
		appendStringInfoString(buf, "none");
		return;
	}
	parts[0] = rel->catalogname;
	parts[1] = rel->schemaname;
	parts[2] = rel->relname;
	appendStringInfo(buf, "%c:", rel->relpersistence);
	for (i = 0; i < 3; i++)
	{
		if (parts[i] == NULL)
			continue;
		if (!first)
			appendStringInfoChar(buf, '.');
		append_quoted(buf, parts[i]);
		first = false;
	}
}

/* Append a constant: i<int>, f<n:text>, b<true|false>, s<n:text>, x<n:text>, null, or ?. */
static void
append_constant(StringInfo buf, Node *node)
{
	if (node != NULL && IsA(node, A_Const))
	{
#if PG_VERSION_NUM >= 150000
		if (((A_Const *) node)->isnull)
			node = NULL;
		else
#endif
			node = (Node *) &((A_Const *) node)->val;
	}
	if (node == NULL)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	switch (nodeTag(node))
	{
		case T_Integer:
			appendStringInfo(buf, "i%d", intVal(node));
			break;
		case T_Float:
			appendStringInfoChar(buf, 'f');
#if PG_VERSION_NUM >= 150000
			append_counted(buf, castNode(Float, node)->fval);
#else
			append_counted(buf, strVal(node));
#endif
			break;
#if PG_VERSION_NUM >= 150000
		case T_Boolean:
			appendStringInfo(buf, "b%s", boolVal(node) ? "true" : "false");
			break;
#endif
		case T_String:
			appendStringInfoChar(buf, 's');
			append_counted(buf, strVal(node));
			break;
		case T_BitString:
			appendStringInfoChar(buf, 'x');
#if PG_VERSION_NUM >= 150000
			append_counted(buf, castNode(BitString, node)->bsval);
#else
			append_counted(buf, strVal(node));
#endif
			break;
#if PG_VERSION_NUM < 150000
		case T_Null:
			appendStringInfoString(buf, "null");
			break;
#endif
		default:
			appendStringInfoChar(buf, '?');
			break;
	}
}

/* Append SET arguments or statement options: constants, or name=constant, comma-separated. */
static void
append_arguments(StringInfo buf, List *arguments)
{
	ListCell   *lc;

	foreach(lc, arguments)
	{
		Node	   *argument = (Node *) lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(buf, ',');
		if (IsA(argument, DefElem))
		{
			append_counted(buf, ((DefElem *) argument)->defname);
			appendStringInfoChar(buf, '=');
			append_constant(buf, ((DefElem *) argument)->arg);
		}
		else
			append_constant(buf, argument);
	}
}

/* Append a relation list, comma-separated. */
static void
append_relations(StringInfo buf, List *relations)
{
	ListCell   *lc;

	foreach(lc, relations)
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(buf, ',');
		append_range_var(buf, (RangeVar *) lfirst(lc));
	}
}

/* Append DROP's objects: each qualified name, parts quoted, comma-separated. */
static void
append_dropped_names(StringInfo buf, List *objects)
{
	ListCell   *lc;
	ListCell   *part;

	foreach(lc, objects)
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoChar(buf, ',');
		foreach(part, (List *) lfirst(lc))
		{
			if (foreach_current_index(part) > 0)
				appendStringInfoChar(buf, '.');
			append_quoted(buf, strVal(lfirst(part)));
		}
	}
}

/* EXPLAIN's ANALYZE as ExplainQuery() reads it: the last occurrence wins (also for explain.c). */
bool
pysafe_explain_analyzes(ExplainStmt *stmt)
{
	ListCell   *lc;
	bool		analyze = false;

	foreach(lc, stmt->options)
	{
		DefElem    *option = (DefElem *) lfirst(lc);

		if (strcmp(option->defname, "analyze") == 0)
			analyze = defGetBoolean(option);
	}
	return analyze;
}

static void append_reading(StringInfo buf, Node *stmt);

/* Append the reading of EXPLAIN's statement: analyzed (a Query) or raw. */
static void
append_explained_reading(StringInfo buf, Node *query)
{
	Query	   *analyzed;

	if (query == NULL || !IsA(query, Query))
	{
		append_reading(buf, query);
		return;
	}
	analyzed = (Query *) query;
	if (analyzed->utilityStmt != NULL)
		append_reading(buf, analyzed->utilityStmt);
	else if (analyzed->commandType == CMD_SELECT)
		appendStringInfo(buf, "select;cte_writes=%d", analyzed->hasModifyingCTE ? 1 : 0);
	else if (analyzed->commandType == CMD_INSERT)
		appendStringInfoString(buf, "insert");
	else if (analyzed->commandType == CMD_UPDATE)
		appendStringInfoString(buf, "update");
	else if (analyzed->commandType == CMD_DELETE)
		appendStringInfoString(buf, "delete");
#if PG_VERSION_NUM >= 150000
	else if (analyzed->commandType == CMD_MERGE)
		appendStringInfoString(buf, "merge");
#endif
	else
		appendStringInfoChar(buf, '?');
}

/* Append the canonical reading of one statement (see the section comment). */
static void
append_reading(StringInfo buf, Node *stmt)
{
	if (stmt == NULL)
	{
		appendStringInfoString(buf, "none");
		return;
	}
	switch (nodeTag(stmt))
	{
		case T_VariableSetStmt:
			{
				VariableSetStmt *set = (VariableSetStmt *) stmt;

				appendStringInfo(buf, "VariableSetStmt;kind=%d;local=%d;name=",
								 (int) set->kind, set->is_local ? 1 : 0);
				append_counted(buf, set->name ? set->name : "");
				appendStringInfoString(buf, ";args=");
				append_arguments(buf, set->args);
				break;
			}
		case T_TransactionStmt:
			appendStringInfo(buf, "TransactionStmt;kind=%d;options=",
							 (int) ((TransactionStmt *) stmt)->kind);
			append_arguments(buf, ((TransactionStmt *) stmt)->options);
			break;
		case T_ExplainStmt:
			appendStringInfo(buf, "ExplainStmt;analyze=%d;query=",
							 pysafe_explain_analyzes((ExplainStmt *) stmt) ? 1 : 0);
			append_explained_reading(buf, ((ExplainStmt *) stmt)->query);
			break;
		case T_CopyStmt:
			{
				CopyStmt   *copy = (CopyStmt *) stmt;

				appendStringInfo(buf, "CopyStmt;from=%d;program=%d;file=%d;query=%d;relation=",
								 copy->is_from ? 1 : 0, copy->is_program ? 1 : 0,
								 copy->filename != NULL ? 1 : 0, copy->query != NULL ? 1 : 0);
				append_range_var(buf, copy->relation);
				break;
			}
		case T_DoStmt:
			{
				ListCell   *lc;
				const char *language = NULL;

				foreach(lc, ((DoStmt *) stmt)->args)
				{
					DefElem    *arg = (DefElem *) lfirst(lc);

					if (strcmp(arg->defname, "language") == 0)
						language = strVal(arg->arg);
				}
				appendStringInfoString(buf, "DoStmt;language=");
				if (language != NULL)
					append_counted(buf, language);
				else
					appendStringInfoString(buf, "none");
				break;
			}
		case T_LockStmt:
			appendStringInfo(buf, "LockStmt;mode=%d", ((LockStmt *) stmt)->mode);
			break;
		case T_DiscardStmt:
			appendStringInfo(buf, "DiscardStmt;target=%d", (int) ((DiscardStmt *) stmt)->target);
			break;
		case T_CreateStmt:
			{
				CreateStmt *create = (CreateStmt *) stmt;

				appendStringInfo(buf, "CreateStmt;inherits=%d;partition_of=%d;relation=",
								 list_length(create->inhRelations),
								 create->partbound != NULL ? 1 : 0);
				append_range_var(buf, create->relation);
				break;
			}
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *ctas = (CreateTableAsStmt *) stmt;

				appendStringInfo(buf, "CreateTableAsStmt;objtype=%s;into=",
								 ctas->objtype == OBJECT_TABLE ? "table" :
								 ctas->objtype == OBJECT_MATVIEW ? "matview" : "other");
				append_range_var(buf, ctas->into ? ctas->into->rel : NULL);
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *drop = (DropStmt *) stmt;
				bool		table = drop->removeType == OBJECT_TABLE;

				appendStringInfo(buf, "DropStmt;type=%s;missing_ok=%d;objects=",
								 table ? "table" : "other", drop->missing_ok ? 1 : 0);
				if (table)
					append_dropped_names(buf, drop->objects);
				break;
			}
		case T_TruncateStmt:
			appendStringInfoString(buf, "TruncateStmt;relations=");
			append_relations(buf, ((TruncateStmt *) stmt)->relations);
			break;
		case T_VacuumStmt:
			appendStringInfoString(buf, "VacuumStmt");
			break;
		case T_ClusterStmt:
			appendStringInfoString(buf, "ClusterStmt");
			break;
		case T_ReindexStmt:
			appendStringInfoString(buf, "ReindexStmt");
			break;
		case T_CheckPointStmt:
			appendStringInfoString(buf, "CheckPointStmt");
			break;
		case T_AlterSystemStmt:
			appendStringInfoString(buf, "AlterSystemStmt");
			break;
		case T_LoadStmt:
			appendStringInfoString(buf, "LoadStmt");
			break;
		case T_VariableShowStmt:
			appendStringInfoString(buf, "VariableShowStmt");
			break;
		case T_ListenStmt:
			appendStringInfoString(buf, "ListenStmt");
			break;
		case T_UnlistenStmt:
			appendStringInfoString(buf, "UnlistenStmt");
			break;
		case T_NotifyStmt:
			appendStringInfoString(buf, "NotifyStmt");
			break;
		case T_DeclareCursorStmt:
			appendStringInfoString(buf, "DeclareCursorStmt");
			break;
		case T_FetchStmt:
			appendStringInfoString(buf, "FetchStmt");
			break;
		case T_ClosePortalStmt:
			appendStringInfoString(buf, "ClosePortalStmt");
			break;
		case T_PrepareStmt:
			appendStringInfoString(buf, "PrepareStmt");
			break;
		case T_ExecuteStmt:
			appendStringInfoString(buf, "ExecuteStmt");
			break;
		case T_DeallocateStmt:
			appendStringInfoString(buf, "DeallocateStmt");
			break;
		case T_CallStmt:
			appendStringInfoString(buf, "CallStmt");
			break;
		case T_ConstraintsSetStmt:
			appendStringInfoString(buf, "ConstraintsSetStmt");
			break;
		case T_GrantStmt:
			appendStringInfoString(buf, "GrantStmt");
			break;
		case T_GrantRoleStmt:
			appendStringInfoString(buf, "GrantRoleStmt");
			break;
		case T_AlterDefaultPrivilegesStmt:
			appendStringInfoString(buf, "AlterDefaultPrivilegesStmt");
			break;
		case T_AlterOwnerStmt:
			appendStringInfoString(buf, "AlterOwnerStmt");
			break;
		default:
			appendStringInfoString(buf, "other");
			break;
	}
}

/* The server's reading of a utility statement, for the policy to compare with its own. */
char *
pysafe_server_reading(Node *stmt)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_reading(&buf, stmt);
	return buf.data;
}
