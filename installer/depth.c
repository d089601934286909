/*-------------------------------------------------------------------------
 *
 * depth.c
 *		How deeply the server's tree of a utility statement nests, measured
 *		before the Python policy reads the statement's text.
 *
 * The policy parses the text again with pglast.  Before PostgreSQL 18's
 * grammar (pglast 8), libpg_query does not check the depth of the tree it
 * hands pglast, and building a deep one takes seconds (a 256 kB
 * "SELECT 1+1+..." with pglast 5 or 7) where a shallow one of the same size
 * takes a fraction of that.  The server has already parsed the statement
 * without trouble and holds its tree, so the shim measures that tree here, in
 * well under a millisecond, and refuses a statement deeper than
 * PYSAFE_MAX_TREE_DEPTH (pysafe/policy/parsing.py, MAX_TREE_DEPTH) with the
 * policy's own too-deep refusal, without calling Python.
 *
 * A node counts one level, a List none, as in the policy's count of pglast's
 * tree (tree_deeper_than).  Raw subtrees are walked with
 * raw_expression_tree_walker, analyzed ones (the Query of EXPLAIN, CREATE
 * TABLE AS and DECLARE) with query_tree_walker and expression_tree_walker.
 * The few utility statements whose parts may nest are walked field by
 * field; a raw node type not known to raw_expression_tree_walker is not
 * entered, and the statement is then "unmeasured": the Python policy keeps
 * its own gate for it (pysafe/policy/parsing.py).  So is any tree the
 * walkers refuse.  Nothing here can crash the backend: the walk recurses
 * at most PYSAFE_MAX_TREE_DEPTH levels and checks the stack at each.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "utils/elog.h"

#include "pysafe.h"

typedef struct DepthWalk
{
	int			depth;			/* nodes on the path to the current one */
	int			limit;
	bool		analyzed;		/* inside a Query: post-analysis nodes */
	bool		unmeasured;		/* a raw node type this file does not enter */
} DepthWalk;

static bool depth_walker(Node *node, void *context);

/* Raw node types raw_expression_tree_walker knows on PostgreSQL 15 to 18. */
static bool
raw_walker_knows(NodeTag tag)
{
	switch (tag)
	{
		case T_SetToDefault:
		case T_CurrentOfExpr:
		case T_SQLValueFunction:
		case T_Integer:
		case T_Float:
		case T_Boolean:
		case T_String:
		case T_BitString:
		case T_ParamRef:
		case T_A_Const:
		case T_A_Star:
		case T_Alias:
		case T_RangeVar:
		case T_GroupingFunc:
		case T_SubLink:
		case T_CaseExpr:
		case T_RowExpr:
		case T_CoalesceExpr:
		case T_MinMaxExpr:
		case T_XmlExpr:
		case T_NullTest:
		case T_BooleanTest:
		case T_JoinExpr:
		case T_IntoClause:
		case T_InsertStmt:
		case T_DeleteStmt:
		case T_UpdateStmt:
		case T_MergeStmt:
		case T_MergeWhenClause:
		case T_SelectStmt:
		case T_PLAssignStmt:
		case T_A_Expr:
		case T_BoolExpr:
		case T_ColumnRef:
		case T_FuncCall:
		case T_NamedArgExpr:
		case T_A_Indices:
		case T_A_Indirection:
		case T_A_ArrayExpr:
		case T_ResTarget:
		case T_MultiAssignRef:
		case T_TypeCast:
		case T_CollateClause:
		case T_SortBy:
		case T_WindowDef:
		case T_RangeSubselect:
		case T_RangeFunction:
		case T_RangeTableSample:
		case T_RangeTableFunc:
		case T_RangeTableFuncCol:
		case T_TypeName:
		case T_ColumnDef:
		case T_IndexElem:
		case T_GroupingSet:
		case T_LockingClause:
		case T_XmlSerialize:
		case T_WithClause:
		case T_InferClause:
		case T_OnConflictClause:
		case T_CommonTableExpr:
			return true;
		default:
			return false;
	}
}

/* Walk the parts of a raw utility statement that may nest; false if unknown. */
static bool
walk_utility_parts(Node *node, DepthWalk *walk, bool *known)
{
	*known = true;
	switch (nodeTag(node))
	{
		case T_ExplainStmt:
			return depth_walker(((ExplainStmt *) node)->query, walk);
		case T_CopyStmt:
			return depth_walker(((CopyStmt *) node)->query, walk) ||
				depth_walker(((CopyStmt *) node)->whereClause, walk);
		case T_CreateTableAsStmt:
			return depth_walker(((CreateTableAsStmt *) node)->query, walk);
		case T_DeclareCursorStmt:
			return depth_walker(((DeclareCursorStmt *) node)->query, walk);
		case T_PrepareStmt:
			return depth_walker(((PrepareStmt *) node)->query, walk);
		case T_ExecuteStmt:
			return depth_walker((Node *) ((ExecuteStmt *) node)->params, walk);
		case T_ViewStmt:
			return depth_walker(((ViewStmt *) node)->query, walk);
		case T_CallStmt:
			return depth_walker((Node *) ((CallStmt *) node)->funccall, walk);
		case T_VariableSetStmt:
			return depth_walker((Node *) ((VariableSetStmt *) node)->args, walk);
		case T_DoStmt:
			return depth_walker((Node *) ((DoStmt *) node)->args, walk);
		case T_TransactionStmt:
			return depth_walker((Node *) ((TransactionStmt *) node)->options, walk);
		case T_DefElem:
			return depth_walker(((DefElem *) node)->arg, walk);
		case T_CreateStmt:
			return depth_walker((Node *) ((CreateStmt *) node)->tableElts, walk) ||
				depth_walker((Node *) ((CreateStmt *) node)->constraints, walk);
		case T_Constraint:
			return depth_walker(((Constraint *) node)->raw_expr, walk) ||
				depth_walker(((Constraint *) node)->where_clause, walk);
		case T_RuleStmt:
			return depth_walker(((RuleStmt *) node)->whereClause, walk) ||
				depth_walker((Node *) ((RuleStmt *) node)->actions, walk);
		case T_CreateFunctionStmt:
			return depth_walker((Node *) ((CreateFunctionStmt *) node)->parameters, walk) ||
				depth_walker((Node *) ((CreateFunctionStmt *) node)->options, walk) ||
				depth_walker(((CreateFunctionStmt *) node)->sql_body, walk);
		case T_FunctionParameter:
			return depth_walker(((FunctionParameter *) node)->defexpr, walk);
		case T_VariableShowStmt:
		case T_LockStmt:
		case T_DiscardStmt:
		case T_ListenStmt:
		case T_UnlistenStmt:
		case T_NotifyStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
		case T_DeallocateStmt:
		case T_TruncateStmt:
		case T_DropStmt:
		case T_CheckPointStmt:
		case T_LoadStmt:
			return false;		/* names and constants only */
		default:
			*known = false;
			return false;
	}
}

/* Visit one node at the next level; true stops the walk (too deep). */
static bool
depth_walker(Node *node, void *context)
{
	DepthWalk  *walk = (DepthWalk *) context;
	bool		stop;
	bool		known;

	if (node == NULL)
		return false;
	if (IsA(node, List))
	{
		ListCell   *cell;

		foreach(cell, (List *) node)
		{
			if (depth_walker((Node *) lfirst(cell), walk))
				return true;
		}
		return false;
	}
	if (IsA(node, IntList) || IsA(node, OidList))
		return false;
	if (++walk->depth > walk->limit)
		return true;
	check_stack_depth();
	if (IsA(node, Query))
	{
		bool		was_analyzed = walk->analyzed;

		walk->analyzed = true;
		stop = query_tree_walker((Query *) node, depth_walker, walk, 0);
		walk->analyzed = was_analyzed;
	}
	else if (walk->analyzed)
		stop = expression_tree_walker(node, depth_walker, walk);
	else
	{
		stop = walk_utility_parts(node, walk, &known);
		if (!known)
		{
			if (raw_walker_knows(nodeTag(node)))
				stop = raw_expression_tree_walker(node, depth_walker, walk);
			else
				walk->unmeasured = true;
		}
	}
	walk->depth--;
	return stop;
}

/*
 * Is the statement's tree deeper than limit nodes?  PYSAFE_DEPTH_UNMEASURED
 * when part of it could not be walked and nothing walked was too deep.
 */
PysafeDepth
pysafe_statement_depth(Node *stmt, int limit)
{
	DepthWalk	walk = {0, limit, false, false};
	MemoryContext context = CurrentMemoryContext;
	volatile PysafeDepth result = PYSAFE_DEPTH_WITHIN;

	PG_TRY();
	{
		if (depth_walker(stmt, &walk))
			result = PYSAFE_DEPTH_TOO_DEEP;
		else if (walk.unmeasured)
			result = PYSAFE_DEPTH_UNMEASURED;
	}
	PG_CATCH();
	{
		/*
		 * The walk takes no locks and holds no resources, so an error it
		 * raised can be dropped here: the stack's limit means too deep, a
		 * node type a walker does not know (elog's internal error) means
		 * unmeasured.  Anything else (a cancel) goes on as raised.
		 */
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_STATEMENT_TOO_COMPLEX)
			result = PYSAFE_DEPTH_TOO_DEEP;
		else if (edata->sqlerrcode == ERRCODE_INTERNAL_ERROR)
			result = PYSAFE_DEPTH_UNMEASURED;
		else
			PG_RE_THROW();
		FreeErrorData(edata);
		FlushErrorState();
	}
	PG_END_TRY();
	return result;
}
