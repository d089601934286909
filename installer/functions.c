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
 *						review clears although it is volatile;
 *	refused_c_functions	"library symbol" of each extension C function the
 *						review refuses, whatever its declared volatility.
 *
 * Functions are judged by the code they run, not by their name or label:
 * an internal-language function by the built-in its prosrc names, a C
 * function by its library and symbol, so a superuser's alias of a writer
 * (CREATE FUNCTION ... LANGUAGE internal STABLE AS 'pg_current_xact_id')
 * is refused like the writer.  Functions in untrusted languages are refused
 * whatever their volatility, unless a superuser cleared them with a
 * security label of provider "pysafe" ('cleared: <reason>'), or they are
 * pysafe's own (members of the pysafe extension owned by a superuser).
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
#include "catalog/dependency.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/seclabel.h"
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
/* One bit per built-in OID (all below FirstGenbkiObjectId): is it refused? */
static uint8 refused_bits[FirstGenbkiObjectId / 8];

/* "library symbol" strings of one review file, sorted; read on first use. */
typedef struct SymbolList
{
	const char *file_name;
	bool		loaded;
	char	  **entries;
	int			count;
	int			capacity;
} SymbolList;

/* The extension functions the review clears although volatile, and those it refuses. */
static SymbolList cleared_c = {"cleared_c_functions"};
static SymbolList refused_c = {"refused_c_functions"};

/* The security label provider, and the form of its one label. */
#define LABEL_PROVIDER "pysafe"
#define CLEARED_PREFIX "cleared:"

/* Where the installer writes a review file (pysafe/install/function_review.py). */
static void
review_file_path(char *path, const char *name)
{
	char		sharepath[MAXPGPATH];

	get_share_path(my_exec_path, sharepath);
	snprintf(path, MAXPGPATH, "%s/pysafe/%s", sharepath, name);
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
read_review_file(const char *name, void (*take_line) (char *line, void *into), void *into)
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
			take_line(line, into);
	}
	FreeFile(file);
	return true;
}

/* Keep the OID of an "OID signature" line of refused_builtins. */
static void
take_refused_builtin(char *line, void *into)
{
	char	   *end;
	unsigned long oid = strtoul(line, &end, 10);

	if (end == line || oid == 0 || oid >= FirstGenbkiObjectId || *end != ' ')
		return;					/* anything unexpected */
	refused_bits[oid / 8] |= (uint8) (1 << (oid % 8));
}

/* Keep a "library symbol" line of cleared_c_functions or refused_c_functions. */
static void
take_c_function(char *line, void *into)
{
	SymbolList *list = (SymbolList *) into;

	if (strchr(line, ' ') == NULL)
		return;					/* anything unexpected */
	if (list->count == list->capacity)
	{
		list->capacity = list->capacity == 0 ? 128 : list->capacity * 2;
		list->entries = list->entries == NULL ?
			MemoryContextAlloc(TopMemoryContext, list->capacity * sizeof(char *)) :
			repalloc(list->entries, list->capacity * sizeof(char *));
	}
	list->entries[list->count++] = MemoryContextStrdup(TopMemoryContext, line);
}

/* Read the refused built-ins' OIDs into a bitmap. */
static void
load_refused_builtins(void)
{
	refused_loaded = true;
	refused_file_found = read_review_file("refused_builtins", take_refused_builtin, NULL);
}

/* Is "library symbol" in the list (read into a sorted array on first use)? */
static bool
symbol_listed(SymbolList *list, const char *library, const char *symbol)
{
	char	   *key;
	bool		listed;

	if (!list->loaded)
	{
		list->loaded = true;
		read_review_file(list->file_name, take_c_function, list);
		if (list->count > 0)
			qsort(list->entries, list->count, sizeof(char *), compare_strings);
	}
	if (list->count == 0)
		return false;
	key = psprintf("%s %s", library, symbol);
	listed = bsearch(&key, list->entries, list->count, sizeof(char *),
					 compare_strings) != NULL;
	pfree(key);
	return listed;
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

/*
 * The library's last path component, without any ".so" suffix: how the
 * refused pairs are matched, so an absolute path to a reviewed library
 * ("/usr/lib/postgresql/15/lib/dblink.so") cannot hide a refused symbol.
 */
static char *
library_base_name(const char *probin)
{
	const char *slash = strrchr(probin, '/');
	char	   *library = pstrdup(slash ? slash + 1 : probin);
	size_t		suffix_length = strlen(DLSUFFIX);
	size_t		length = strlen(library);

	if (length > suffix_length && strcmp(library + length - suffix_length, DLSUFFIX) == 0)
		library[length - suffix_length] = '\0';
	return library;
}

/* A text column of a pg_proc row as a C string; NULL if null. */
static char *
proc_text(HeapTuple proc_tuple, AttrNumber attribute)
{
	bool		isnull;
	Datum		value = SysCacheGetAttr(PROCOID, proc_tuple, attribute, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/*
 * Does the extension review refuse this C function's library and symbol?
 * On true, *refusal says which it runs.
 */
static bool
c_function_refused(HeapTuple proc_tuple, char *refusal, Size refusal_size)
{
	char	   *probin = proc_text(proc_tuple, Anum_pg_proc_probin);
	char	   *symbol = proc_text(proc_tuple, Anum_pg_proc_prosrc);
	char	   *library;
	bool		refused;

	if (probin == NULL || symbol == NULL)
		return false;
	library = library_base_name(probin);
	refused = symbol_listed(&refused_c, library, symbol);
	if (refused)
		snprintf(refusal, refusal_size,
				 "Function %s runs %s of library %s, which pysafe's extension review refuses (pysafe/policy/extension_functions.py), whatever its volatility; it is C-language.",
				 NameStr(((Form_pg_proc) GETSTRUCT(proc_tuple))->proname), symbol, library);
	return refused;
}

/* Does the review clear this C function (its library and symbol are listed)? */
static bool
c_function_cleared(HeapTuple proc_tuple)
{
	char	   *probin = proc_text(proc_tuple, Anum_pg_proc_probin);
	char	   *symbol = proc_text(proc_tuple, Anum_pg_proc_prosrc);
	char	   *library;

	if (probin == NULL || symbol == NULL)
		return false;
	library = library_in_libdir(probin);
	return library != NULL && symbol_listed(&cleared_c, library, symbol);
}

/*
 * Does the built-in review refuse the entry point of this internal-language
 * function that is not itself a built-in (a superuser's alias: CREATE
 * FUNCTION current_txid() ... LANGUAGE internal AS 'pg_current_xact_id')?
 * Its prosrc names the built-in C function fmgr runs; the review of the
 * built-in with that entry point applies, whatever the alias's name or
 * volatility.  On true, *refusal names both.
 */
static bool
internal_entry_point_refused(HeapTuple proc_tuple, char *refusal, Size refusal_size)
{
	char	   *prosrc = proc_text(proc_tuple, Anum_pg_proc_prosrc);
	Oid			builtin;
	char		detail[PYSAFE_DETAIL_SIZE];

	if (prosrc == NULL)
		return false;
	builtin = fmgr_internal_function(prosrc);
	if (!OidIsValid(builtin))
		return false;			/* fmgr itself refuses an unknown entry point */
	if (!pysafe_builtin_refused(builtin, PYSAFE_RUNNING, detail, sizeof(detail)))
		return false;
	snprintf(refusal, refusal_size, "Function %s runs built-in %s: %s",
			 NameStr(((Form_pg_proc) GETSTRUCT(proc_tuple))->proname), prosrc, detail);
	return true;
}

/* Is the label one the provider accepts: "cleared: <reason>", with a reason? */
static bool
label_is_clearance(const char *label)
{
	const char *reason;

	if (strncmp(label, CLEARED_PREFIX, strlen(CLEARED_PREFIX)) != 0)
		return false;
	for (reason = label + strlen(CLEARED_PREFIX); *reason == ' '; reason++)
		;
	return *reason != '\0';
}

/*
 * Is this function in an untrusted language cleared to run in restricted
 * sessions: pysafe's own (a member of the pysafe extension, owned by a
 * superuser), or labelled 'cleared: <reason>' by a superuser (the label
 * provider accepts no one else)?  Two catalog reads; untrusted functions
 * are rare in restricted sessions' statements.
 */
static bool
untrusted_function_cleared(Oid fn_oid, Form_pg_proc proc)
{
	Oid			extension = getExtensionOfObject(ProcedureRelationId, fn_oid);
	ObjectAddress address;
	char	   *label;

	if (OidIsValid(extension) && superuser_arg(proc->proowner))
	{
		char	   *name = get_extension_name(extension);

		if (name != NULL && strcmp(name, "pysafe") == 0)
			return true;
	}
	ObjectAddressSet(address, ProcedureRelationId, fn_oid);
	label = GetSecurityLabel(&address, LABEL_PROVIDER);
	return label != NULL && label_is_clearance(label);
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

/* The rule's name in refusal counts and log lines. */
const char *
pysafe_rule_name(PysafeFunctionRule rule)
{
	switch (rule)
	{
		case PYSAFE_RULE_C_FUNCTIONS:
			return "c_functions";
		case PYSAFE_RULE_UNTRUSTED_FUNCTIONS:
			return "untrusted_functions";
		case PYSAFE_RULE_BUILTIN_FUNCTIONS:
			return "builtin_functions";
		default:
			return NULL;
	}
}

/*
 * fmgr binds a C function, and loads its library right after: the first
 * bind of each library in this backend may define settings, which
 * superuser_settings.c guards at the next check.  Not when the executor
 * announces the call, which comes before the bind (a check then would run
 * before the load).  The libraries seen are remembered by probin.
 */
static void
note_library(HeapTuple proc_tuple)
{
	static List *seen = NIL;
	char	   *probin = proc_text(proc_tuple, Anum_pg_proc_probin);
	ListCell   *lc;
	MemoryContext old_context;

	if (probin == NULL)
		return;
	foreach(lc, seen)
	{
		if (strcmp((const char *) lfirst(lc), probin) == 0)
			return;
	}
	old_context = MemoryContextSwitchTo(TopMemoryContext);
	seen = lappend(seen, pstrdup(probin));
	MemoryContextSwitchTo(old_context);
	pysafe_note_library_may_load();
}

/*
 * Which rule refuses this function, judged by the code it runs?
 *
 * - internal language (not a built-in): the built-in review of the entry
 *   point prosrc names, whatever the function's volatility;
 * - C: refused if the extension review refuses its library and symbol,
 *   whatever its volatility; otherwise if volatile, unless the review
 *   clears it; under block_all_c_functions every C and internal function;
 * - untrusted languages: refused whatever the volatility, unless cleared
 *   (untrusted_function_cleared());
 * - trusted languages: never (their statements meet every check).
 *
 * by_executor says who asks (see judged_call()).  While a plain EXPLAIN
 * plans or starts its plan (explain), a refused function declared volatile
 * is PYSAFE_FUNCTION_DEFERRED: nothing calls it then, and the caller binds
 * it through fmgr's wrapper, whose start checks it in full (explain.c).
 * On a rule, *refusal describes the function.
 *
 * Built-in functions are left to pysafe_builtin_refused(): the executor
 * announces them.  They reach this check only when the planner asks whether
 * a function in FROM may be inlined (FmgrHookIsNeeded), which is not a call;
 * judging them here by the C-language rule refused cleared ones such as
 * pg_lock_status() behind pg_locks.
 */
PysafeFunctionRule
pysafe_function_rule(Oid fn_oid, bool block_all_c, bool by_executor,
					 PysafeExplainState explain, char *refusal, Size refusal_size)
{
	HeapTuple	tuple;
	Form_pg_proc proc;
	bool		volatile_function;
	PysafeFunctionRule rule = PYSAFE_FUNCTION_ALLOWED;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tuple))
		return PYSAFE_FUNCTION_ALLOWED; /* fmgr itself reports the missing function */
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	volatile_function = proc->provolatile == PROVOLATILE_VOLATILE;

	if (fn_oid < FirstGenbkiObjectId && proc->prolang == INTERNALlanguageId)
		;						/* built-in: the review decides (see above) */
	else if (!judged_call(proc, by_executor))
		;
	else if (proc->prolang == INTERNALlanguageId)
	{
		if (internal_entry_point_refused(tuple, refusal, refusal_size))
			rule = PYSAFE_RULE_BUILTIN_FUNCTIONS;
		else if (block_all_c)
		{
			rule = PYSAFE_RULE_C_FUNCTIONS;
			snprintf(refusal, refusal_size, "Function %s is %sC-language.",
					 NameStr(proc->proname), volatile_function ? "volatile and " : "");
		}
	}
	else if (proc->prolang == ClanguageId)
	{
		if (!by_executor)
			note_library(tuple);	/* fmgr loads it right after this bind */
		if (c_function_refused(tuple, refusal, refusal_size))
			rule = PYSAFE_RULE_C_FUNCTIONS;
		else if (block_all_c || (volatile_function && !c_function_cleared(tuple)))
		{
			rule = PYSAFE_RULE_C_FUNCTIONS;
			snprintf(refusal, refusal_size, "Function %s is %sC-language.",
					 NameStr(proc->proname), volatile_function ? "volatile and " : "");
		}
	}
	else if (!language_is_trusted(proc->prolang) &&
			 !untrusted_function_cleared(fn_oid, proc))
	{
		rule = PYSAFE_RULE_UNTRUSTED_FUNCTIONS;
		snprintf(refusal, refusal_size,
				 "Function %s is %suntrusted-language, and no superuser cleared it (SECURITY LABEL FOR pysafe ... IS 'cleared: <reason>').",
				 NameStr(proc->proname), volatile_function ? "volatile and " : "");
	}
	if (rule != PYSAFE_FUNCTION_ALLOWED && volatile_function && explain != PYSAFE_RUNNING)
		rule = PYSAFE_FUNCTION_DEFERRED;
	ReleaseSysCache(tuple);
	return rule;
}

/*
 * Does the review refuse this built-in (a writer, or a volatile one it has
 * not reviewed)?  One bit of a bitmap, no catalog lookup.  While the
 * EXPLAIN-only start of a plan that evaluates nothing runs (explain.c),
 * a volatile one is announced but cannot be called, and is let through.
 * On true, *refusal says why.
 */
bool
pysafe_builtin_refused(Oid fn_oid, PysafeExplainState explain, char *refusal, Size refusal_size)
{
	char		path[MAXPGPATH];

	if (fn_oid >= FirstGenbkiObjectId)
		return false;
	if (!refused_loaded)
		load_refused_builtins();
	if (refused_file_found)
	{
		if ((refused_bits[fn_oid / 8] & (1 << (fn_oid % 8))) == 0)
			return false;
		if (explain == PYSAFE_EXPLAIN_STARTING && func_volatile(fn_oid) == PROVOLATILE_VOLATILE)
			return false;
		snprintf(refusal, refusal_size,
				 "%s is a volatile built-in function that pysafe's review does not clear (pysafe/policy/functions.py).",
				 get_func_name(fn_oid));
		return true;
	}
	if (func_volatile(fn_oid) != PROVOLATILE_VOLATILE || explain == PYSAFE_EXPLAIN_STARTING)
		return false;
	review_file_path(path, "refused_builtins");
	snprintf(refusal, refusal_size,
			 "%s is a volatile built-in function, and the list of refused ones (%s) is missing; a superuser should run \"python -m pysafe install\".",
			 get_func_name(fn_oid), path);
	return true;
}

/*
 * The security label provider's hook: only a superuser may label, only a
 * function (or procedure), and only with the clearance the function checks
 * read, 'cleared: <reason>'; a NULL label takes a clearance away.
 */
static void
pysafe_relabel(const ObjectAddress *object, const char *seclabel)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may set pysafe security labels")));
	if (object->classId != ProcedureRelationId || object->objectSubId != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pysafe security labels apply to functions and procedures only")));
	if (seclabel != NULL && !label_is_clearance(seclabel))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a pysafe security label must read \"cleared: <reason>\""),
				 errhint("The reason says who reviewed the function and why it writes nothing.")));
}

/* Load time: register the security label provider "pysafe". */
void
pysafe_functions_init(void)
{
	register_label_provider(LABEL_PROVIDER, pysafe_relabel);
}
