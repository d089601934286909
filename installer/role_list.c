/*-------------------------------------------------------------------------
 *
 * role_list.c
 *		The one reading of the role names pysafe.roles lists.
 *
 * The shim decides who is restricted from these names, and its check hook
 * accepts a value only if it can be read; the SQL functions behind
 * pysafe.status(), pysafe.sessions() and pysafe.audit() read the list
 * through pysafe_internal.split_role_list(), which is this reader when the
 * shim is loaded (pysafe_internal.read_role_list() mirrors it in SQL for
 * Python-only mode; tests/test_role_names.py holds the two equal).
 *
 * It reads the list as the server reads a list of identifiers such as
 * search_path (SplitIdentifierString): names separated by commas, the
 * whitespace around them dropped; a quoted name kept as written, "" being
 * one quote; an unquoted name never empty, without whitespace, its ASCII
 * letters downcased.  Two things of the server's reading depend on the
 * encoding of the database a backend is in, which a connection does not
 * have yet while it authenticates (when the shim first decides): folding
 * the non-ASCII letters of single-byte encodings, and truncating names to
 * NAMEDATALEN - 1 bytes at a character boundary.  This reader does
 * neither: unquoted names fold ASCII letters only, in every database, and
 * a name of NAMEDATALEN bytes or more, which can name no role, makes the
 * list unreadable.  So a session's answer never changes with the moment
 * it is computed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "parser/scansup.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "pysafe.h"

PG_FUNCTION_INFO_V1(pysafe_split_role_list);

/* Skip the whitespace the server's scanner skips. */
static const char *
skip_spaces(const char *p)
{
	while (*p != '\0' && scanner_isspace(*p))
		p++;
	return p;
}

/* Read the name at *p into name, leaving *p after it; false if there is none. */
static bool
read_name(const char **p, StringInfo name)
{
	const char *c = *p;

	if (*c == '"')
	{
		/* Quoted: up to the next quote that is not doubled. */
		for (c++;; c++)
		{
			if (*c == '\0')
				return false;
			if (*c == '"' && *++c != '"')
				break;
			appendStringInfoChar(name, *c);
		}
	}
	else
	{
		/* Unquoted: never empty; ASCII letters downcased, nothing else. */
		for (; *c != '\0' && *c != ',' && !scanner_isspace(*c); c++)
			appendStringInfoChar(name, (*c >= 'A' && *c <= 'Z') ? *c + ('a' - 'A') : *c);
		if (name->len == 0)
			return false;
	}
	*p = c;
	return true;
}

/*
 * Read a pysafe.roles value into *names, a list of palloc'd names (free it
 * with list_free_deep).  False, with *names NIL, when the value is not a
 * list of role names: an empty item, an unclosed quote, something after a
 * name other than a comma, a name of NAMEDATALEN bytes or more.
 */
bool
pysafe_read_role_list(const char *value, List **names)
{
	const char *p = skip_spaces(value ? value : "");
	StringInfoData name;
	bool		ok = true;

	*names = NIL;
	if (*p == '\0')
		return true;
	initStringInfo(&name);
	for (;;)
	{
		resetStringInfo(&name);
		if (!read_name(&p, &name) || name.len >= NAMEDATALEN)
		{
			ok = false;
			break;
		}
		*names = lappend(*names, pstrdup(name.data));
		p = skip_spaces(p);
		if (*p == '\0')
			break;
		if (*p != ',')
		{
			ok = false;
			break;
		}
		p = skip_spaces(p + 1);
	}
	pfree(name.data);
	if (!ok)
	{
		list_free_deep(*names);
		*names = NIL;
	}
	return ok;
}

/*
 * pysafe_internal.split_role_list(list text) RETURNS text[]: the names a
 * pysafe.roles value lists, as the shim reads them; NULL when the value is
 * unreadable (the check hook refuses it).
 */
Datum
pysafe_split_role_list(PG_FUNCTION_ARGS)
{
	char	   *value = text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *names;
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;
	ArrayType  *result;

	if (!pysafe_read_role_list(value, &names))
		PG_RETURN_NULL();
	elems = (Datum *) palloc(sizeof(Datum) * Max(list_length(names), 1));
	foreach(lc, names)
		elems[n++] = CStringGetTextDatum((const char *) lfirst(lc));
	result = construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
	list_free_deep(names);
	PG_RETURN_ARRAYTYPE_P(result);
}
