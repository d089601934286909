/*-------------------------------------------------------------------------
 *
 * functions.c
 *		Which functions may have side effects: the facts behind the shim's
 *		function checks.
 *
 * The classification itself lives in Python (pysafe/policy/functions.py for
 * built-ins, pysafe/policy/extension_functions.py for extensions).  The
 * installer writes it beside the server-side Python as two files, which
 * this file reads once per backend:
 *
 *	refused_builtins	"OID signature" of each built-in the review refuses,
 *						and of each volatile built-in it has not reviewed;
 *	cleared_c_functions	"library symbol" of each extension C function the
 *						review clears although it is volatile.
 *
 * Without the first file every volatile built-in is refused; without the
 * second every volatile C function is (fail closed).  Nothing here decides
 * whether a session is restricted: pysafe.c asks only for restricted ones.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "pysafe.h"

#ifndef DLSUFFIX
#define DLSUFFIX ".so"			/* pg_config.h defines it from PostgreSQL 16 */
#endif

/* The refused built-ins' OIDs, sorted; read on first use. */
static bool refused_loaded = false;
static bool refused_file_found = false;
static Oid *refused_oids = NULL;
static int	refused_count = 0;

/* The cleared extension functions as sorted "library symbol" strings. */
static bool cleared_loaded = false;
static char **cleared_entries = NULL;
static int	cleared_count = 0;

/* Where the installer writes a review file (pysafe/install/function_review.py). */
static void
review_file_path(char *path, const char *name)
{
	char		sharepath[MAXPGPATH];

	get_share_path(my_exec_path, sharepath);
	snprintf(path, MAXPGPATH, "%s/pysafe/%s", sharepath, name);
}

/* qsort/bsearch comparison of OIDs. */
static int
compare_oids(const void *a, const void *b)
{
	Oid			x = *(const Oid *) a;
	Oid			y = *(const Oid *) b;

	return (x > y) - (x < y);
}

/* qsort/bsearch comparison of C strings held by pointer. */
static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Hand each line of a review file to take_line; false if the file is missing.
 * Comment lines ('#') and lines over 1 kB are never the entries callers want.
 */
static bool
read_review_file(const char *name, void (*take_line) (char *line))
{
	char		path[MAXPGPATH];
	char		line[1024];
	FILE	   *file;

	review_file_path(path, name);
	file = AllocateFile(path, "r");
	if (file == NULL)
		return false;
	while (fgets(line, sizeof(line), file) != NULL)
	{
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] != '#')
			take_line(line);
	}
	FreeFile(file);
	return true;
}

/* Keep the OID of an "OID signature" line of refused_builtins. */
static void
take_refused_builtin(char *line)
{
	static int	capacity = 0;
	char	   *end;
	unsigned long oid = strtoul(line, &end, 10);

	if (end == line || oid == 0 || *end != ' ')
		return;					/* anything unexpected */
	if (refused_count == capacity)
	{
		capacity = capacity == 0 ? 256 : capacity * 2;
		refused_oids = refused_oids == NULL ?
			MemoryContextAlloc(TopMemoryContext, capacity * sizeof(Oid)) :
			repalloc(refused_oids, capacity * sizeof(Oid));
	}
	refused_oids[refused_count++] = (Oid) oid;
}

/* Keep a "library symbol" line of cleared_c_functions. */
static void
take_cleared_c_function(char *line)
{
	static int	capacity = 0;

	if (strchr(line, ' ') == NULL)
		return;					/* anything unexpected */
	if (cleared_count == capacity)
	{
		capacity = capacity == 0 ? 128 : capacity * 2;
		cleared_entries = cleared_entries == NULL ?
			MemoryContextAlloc(TopMemoryContext, capacity * sizeof(char *)) :
			repalloc(cleared_entries, capacity * sizeof(char *));
	}
	cleared_entries[cleared_count++] = MemoryContextStrdup(TopMemoryContext, line);
}

/* Read the refused built-ins' OIDs into a sorted array. */
static void
load_refused_builtins(void)
{
	refused_loaded = true;
	refused_file_found = read_review_file("refused_builtins", take_refused_builtin);
	if (refused_count > 0)
		qsort(refused_oids, refused_count, sizeof(Oid), compare_oids);
}

/* Read the cleared extension functions into a sorted array. */
static void
load_cleared_c_functions(void)
{
	cleared_loaded = true;
	read_review_file("cleared_c_functions", take_cleared_c_function);
	if (cleared_count > 0)
		qsort(cleared_entries, cleared_count, sizeof(char *), compare_strings);
}

/*
 * The library's name if probin names one in the server's own library folder
 * ("$libdir/pgcrypto", or "pgcrypto" found on dynamic_library_path), with
 * any ".so" suffix removed; NULL for any other path.  The same reading as
 * library_name() in pysafe/policy/extension_functions.py.
 */
static char *
library_in_libdir(const char *probin)
{
	const char *name = probin;
	size_t		suffix_length = strlen(DLSUFFIX);
	size_t		length;
	char	   *library;

	if (strncmp(probin, "$libdir/", 8) == 0)
		name = probin + 8;
	if (name[0] == '\0' || strchr(name, '/') != NULL)
		return NULL;
	library = pstrdup(name);
	length = strlen(library);
	if (length > suffix_length && strcmp(library + length - suffix_length, DLSUFFIX) == 0)
		library[length - suffix_length] = '\0';
	return library;
}

/* Does the review clear this C function (its library and symbol are listed)? */
static bool
c_function_cleared(HeapTuple proc_tuple)
{
	Datum		probin;
	Datum		prosrc;
	bool		isnull;
	char	   *library;
	char	   *symbol;
	char	   *key;
	bool		cleared;

	if (!cleared_loaded)
		load_cleared_c_functions();
	if (cleared_count == 0)
		return false;
	probin = SysCacheGetAttr(PROCOID, proc_tuple, Anum_pg_proc_probin, &isnull);
	if (isnull)
		return false;
	prosrc = SysCacheGetAttr(PROCOID, proc_tuple, Anum_pg_proc_prosrc, &isnull);
	if (isnull)
		return false;
	library = library_in_libdir(TextDatumGetCString(probin));
	if (library == NULL)
		return false;
	symbol = TextDatumGetCString(prosrc);
	key = psprintf("%s %s", library, symbol);
	cleared = bsearch(&key, cleared_entries, cleared_count, sizeof(char *),
					  compare_strings) != NULL;
	pfree(key);
	pfree(symbol);
	pfree(library);
	return cleared;
}

/*
 * Is this a call the checks judge?  Not of a function that takes or makes
 * "internal": SQL cannot give it a value.  When fmgr binds a function
 * (by_executor false), not of a language handler or a (event) trigger
 * function either: fmgr binds those for the machinery that calls them, for
 * every PL/pgSQL call and trigger.  When the executor announces a call
 * (by_executor true), a query calls it directly, which the machinery never
 * does, so those are judged like any other function.
 */
static bool
judged_call(Form_pg_proc proc, bool by_executor)
{
	int			i;

	if (proc->prorettype == INTERNALOID)
		return false;
	if (!by_executor &&
		(proc->prorettype == LANGUAGE_HANDLEROID || proc->prorettype == TRIGGEROID ||
		 proc->prorettype == EVENT_TRIGGEROID))
		return false;
	for (i = 0; i < proc->pronargs; i++)
		if (proc->proargtypes.values[i] == INTERNALOID)
			return false;
	return true;
}

/* Is the language trusted?  Unknown languages count as untrusted. */
static bool
language_is_trusted(Oid langoid)
{
	HeapTuple	tuple = SearchSysCache1(LANGOID, ObjectIdGetDatum(langoid));
	bool		trusted = false;

	if (HeapTupleIsValid(tuple))
	{
		trusted = ((Form_pg_language) GETSTRUCT(tuple))->lanpltrusted;
		ReleaseSysCache(tuple);
	}
	return trusted;
}

/*
 * May this function have side effects?  A volatile C-language (or
 * non-built-in internal) function may, unless the extension review clears
 * it; under block_all_c_functions every C function counts.  A volatile
 * function in an untrusted language may too.  by_executor says who asks
 * (see judged_call()).  On true, *refusal describes the function and
 * *c_language says which rule it fell under.
 *
 * Built-in functions are left to pysafe_builtin_refused(): the executor
 * announces them.  They reach this check only when the planner asks whether
 * a function in FROM may be inlined (FmgrHookIsNeeded), which is not a call;
 * judging them here by the C-language rule refused cleared ones such as
 * pg_lock_status() behind pg_locks.
 */
bool
pysafe_function_may_write(Oid fn_oid, bool block_all_c, bool by_executor,
						  bool *c_language, char *refusal, Size refusal_size)
{
	HeapTuple	tuple;
	Form_pg_proc proc;
	bool		blocked = false;

	*c_language = false;
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tuple))
		return false;			/* fmgr itself reports the missing function */
	proc = (Form_pg_proc) GETSTRUCT(tuple);

	if (fn_oid < FirstGenbkiObjectId && proc->prolang == INTERNALlanguageId)
		;						/* built-in: the review decides (see above) */
	else if (judged_call(proc, by_executor))
	{
		*c_language = proc->prolang == ClanguageId ||
			proc->prolang == INTERNALlanguageId;
		if (*c_language)
			blocked = block_all_c ||
				(proc->provolatile == PROVOLATILE_VOLATILE &&
				 !(proc->prolang == ClanguageId && c_function_cleared(tuple)));
		else
			blocked = proc->provolatile == PROVOLATILE_VOLATILE &&
				!language_is_trusted(proc->prolang);
	}
	if (blocked)
		snprintf(refusal, refusal_size, "Function %s is %s%s-language.",
				 NameStr(proc->proname),
				 proc->provolatile == PROVOLATILE_VOLATILE ? "volatile and " : "",
				 *c_language ? "C" : "untrusted");
	ReleaseSysCache(tuple);
	return blocked;
}

/*
 * Does the review refuse this built-in (a writer, or a volatile one it has
 * not reviewed)?  One binary search, no catalog lookup.  On true, *refusal
 * says why.
 */
bool
pysafe_builtin_refused(Oid fn_oid, char *refusal, Size refusal_size)
{
	char		path[MAXPGPATH];

	if (fn_oid >= FirstGenbkiObjectId)
		return false;
	if (!refused_loaded)
		load_refused_builtins();
	if (refused_file_found)
	{
		if (bsearch(&fn_oid, refused_oids, refused_count, sizeof(Oid), compare_oids) == NULL)
			return false;
		snprintf(refusal, refusal_size,
				 "%s is a volatile built-in function that pysafe's review does not clear (pysafe/policy/functions.py).",
				 get_func_name(fn_oid));
		return true;
	}
	if (func_volatile(fn_oid) != PROVOLATILE_VOLATILE)
		return false;
	review_file_path(path, "refused_builtins");
	snprintf(refusal, refusal_size,
			 "%s is a volatile built-in function, and the list of refused ones (%s) is missing; a superuser should run \"python -m pysafe install\".",
			 get_func_name(fn_oid), path);
	return true;
}
