/*-------------------------------------------------------------------------
 *
 * pysafe.c
 *		The pysafe shim: hooks that keep restricted sessions read-only.
 *
 * The shim holds no utility policy of its own.  It
 *	- decides whether the session is restricted (session user in, or a
 *	  member of, a role listed in pysafe.roles; superusers never are),
 *	- forces XactReadOnly for restricted sessions at every statement,
 *	- refuses DML, data-modifying WITH, row locks and SELECT INTO at
 *	  ExecutorStart,
 *	- refuses side-effecting functions (volatile C or untrusted-language
 *	  functions) when fmgr binds them, and built-ins the Python policy
 *	  does not clear when the executor announces them, in parallel
 *	  workers too,
 *	- hands every utility statement that is not trivially safe to the
 *	  Python policy (pysafe_internal.decide_utility, a PL/Python function) with its
 *	  reading of the server's parse tree, and refuses the statement if that
 *	  policy cannot be reached, fails, reads it otherwise, or replies
 *	  anything malformed,
 *	- guards settings in GUC check hooks: pysafe.* come from configuration
 *	  files only; the read-only settings stay on; a restricted session may
 *	  not become a superuser role, nor leave a locked identity,
 *	- at authentication, sets a restricted login's read-only default and
 *	  refuses its replication connections.
 *
 * reading.c describes the server's parse tree of a statement for the
 * policy to compare with its own reading.
 *
 * Loaded through shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
/*
 * libpq-be.h pulls in the GSSAPI headers when the server was built with
 * GSSAPI.  The shim reads only Port's user and database names, and Port
 * holds its GSSAPI state through a pointer either way, so building without
 * those headers leaves its layout unchanged.
 */
#undef ENABLE_GSS
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "replication/walsender.h"
#include "storage/fd.h"
#include "tcop/cmdtag.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "pysafe.h"

PG_MODULE_MAGIC;

#if PG_VERSION_NUM < 140000
#error "pysafe needs PostgreSQL 14 or newer"
#endif

/*
 * The build of the shim, a digest of its sources that install passes to
 * make: install says RESTART NEEDED while the server runs another build.
 */
#ifndef PYSAFE_SHIM_BUILD
#define PYSAFE_SHIM_BUILD "unknown"
#endif
static char *pysafe_shim_build = NULL;

/* Bits of the flags argument of pysafe_internal.decide_utility; see pysafe/policy/settings.py. */
#define POLICY_BLOCK_DML			0x01
#define POLICY_BLOCK_DDL			0x02
#define POLICY_BLOCK_C_FUNCTIONS	0x04
#define POLICY_BLOCK_ALL_C			0x08
#define POLICY_FORCE_READ_ONLY		0x10
#define POLICY_LOCK_SESSION_AUTH	0x20
#define POLICY_SWITCHED_SESSION_AUTH	0x40
#define POLICY_ALLOW_TEMP_OBJECTS	0x80
#define POLICY_IGNORE_READ_WRITE	0x100

/* The policy's reply for "allowed; it writes only temporary tables". */
#define POLICY_TEMPORARY_WRITE	"+temporary"
#define POLICY_PURE_ALLOW		"+allow"	/* allowed from the question alone: remember it */
#define MAX_DECIDED_BYTES		(256 * 1024)	/* pysafe/policy/parsing.py has the same */

#define POLICY_SCHEMA		"pysafe_internal"
#define POLICY_EXTENSION	"pysafe"
#define POLICY_FUNCTION		"decide_utility"
#define POLICY_FUNCTION_ARGS	4

/*
 * Always part of the restricted list, whatever pysafe.roles says: the role
 * pysafe.restrict() grants, so a superuser can restrict a role from SQL
 * without editing configuration files (the installer creates it).
 */
#define RESTRICTED_GROUP	PYSAFE_RESTRICTED_GROUP

/* Settings */
static char *pysafe_roles = NULL;
static bool pysafe_block_dml = true;
static bool pysafe_block_ddl = true;
static bool pysafe_block_c_functions = true;
static bool pysafe_block_all_c_functions = false;
static bool pysafe_force_read_only = true;
static bool pysafe_lock_session_authorization = false;
static bool pysafe_allow_temp_objects = false;

/* pysafe.read_write_requests: what a restricted session's READ WRITE request gets. */
typedef enum ReadWriteRequests
{
	READ_WRITE_IGNORE,			/* accepted with a NOTICE; the session stays read-only */
	READ_WRITE_REFUSE			/* refused with 25006, as SafeSession does */
} ReadWriteRequests;

static const struct config_enum_entry read_write_request_options[] = {
	{"ignore", READ_WRITE_IGNORE, false},
	{"refuse", READ_WRITE_REFUSE, false},
	{NULL, 0, false}
};
static int	pysafe_read_write_requests = READ_WRITE_IGNORE;
static bool pysafe_log_refusals = true;
static int	pysafe_log_statement_length = 200;

/*
 * The statement the policy allowed as a write to temporary tables, while it
 * runs (T_Invalid otherwise); see run_temporary_write().
 */
static NodeTag temporary_write_running = T_Invalid;

/* Saved hook values, chained in our hooks */
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static fmgr_hook_type prev_fmgr_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;

/* Saved check hooks of the core settings pysafe guards (see guard_core_settings). */
static GucBoolCheckHook prev_check_default_read_only = NULL;
static GucBoolCheckHook prev_check_transaction_read_only = NULL;
static GucStringCheckHook prev_check_session_authorization = NULL;
static GucStringAssignHook prev_assign_session_authorization = NULL;
static GucStringCheckHook prev_check_role = NULL;

/*
 * The restricted identity a session switched into with SET SESSION
 * AUTHORIZATION while pysafe.lock_session_authorization was on; InvalidOid
 * when there is none.  Leaving it by any path ends the session.
 */
static Oid	locked_identity = InvalidOid;

/* The policy entry point's OID once found; see lookup_policy_function(). */
static Oid	policy_function_oid = InvalidOid;

/* Bumped by restriction_cache_reset(): an answer for another role may have changed. */
static uint64 restriction_generation = 0;

/* Cached answer of session_is_restricted(); see restriction_cache_reset(). */
static bool restriction_cache_valid = false;
static Oid	restriction_cache_user = InvalidOid;
static bool restriction_cache_value = false;

/* Was the shim loaded with shared_preload_libraries, or later by one backend? */
static bool loaded_at_server_start = false;

void		_PG_init(void);
static bool check_cluster_setting(const char *name, GucSource source);
extern PGDLLEXPORT void pysafe_session_start(void);

/*
 * Begin the materialized result of a set-returning SQL function (calls.c,
 * refusals.c): its tuplestore, already handed to the executor, and in
 * *desc the row type its rows take.
 */
Tuplestorestate *
pysafe_begin_set_result(FunctionCallInfo fcinfo, TupleDesc *desc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller_context;
	Tuplestorestate *store;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s() must be called where a set is accepted",
						get_func_name(fcinfo->flinfo->fn_oid))));
	if (get_call_result_type(fcinfo, NULL, desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	caller_context = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	*desc = CreateTupleDescCopy(*desc);
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = *desc;
	MemoryContextSwitchTo(caller_context);
	return store;
}

PG_FUNCTION_INFO_V1(pysafe_session_is_restricted);
PG_FUNCTION_INFO_V1(pysafe_fast_path_allows);
PG_FUNCTION_INFO_V1(pysafe_shim_settings_flags);
PG_FUNCTION_INFO_V1(pysafe_login_trigger);


/* Forget the cached restriction; roles, memberships or superuser flags changed. */
static void
restriction_cache_reset(void)
{
	restriction_cache_valid = false;
	restriction_generation++;
}

/* How many times roles, memberships or pysafe.roles changed in this backend (transitions.c). */
uint64
pysafe_restriction_generation(void)
{
	return restriction_generation;
}

/* GUC assign hook for pysafe.roles: catalog work waits for the next statement. */
static void
assign_roles(const char *newval, void *extra)
{
	restriction_cache_reset();
}

/* GUC check hook for pysafe.roles: cluster-wide, and a list of identifiers. */
static bool
check_roles(char **newval, void **extra, GucSource source)
{
	List	   *names;
	bool		ok;

	if (!check_cluster_setting("pysafe.roles", source))
		return false;
	ok = pysafe_read_role_list(*newval, &names);
	list_free_deep(names);
	if (!ok)
		GUC_check_errdetail("List syntax is invalid, or a name has %d bytes or more.", NAMEDATALEN);
	return ok;
}

/* The pysafe.roles value this backend last looked over for unknown names. */
static char *roles_looked_over = NULL;

/*
 * Warn a superuser whose session sees pysafe.roles change (the DBA who just
 * reloaded) about names that match no role: they restrict nobody (a typo,
 * or "report team" for "Report Team").  Once per value and backend, at the
 * next statement; the value a session starts with is only noted, so new
 * connections stay quiet (status and audit report it for as long as it
 * lasts).  Needs a transaction for the lookups.
 */
static void
warn_unknown_listed_roles(void)
{
	const char *value = pysafe_roles ? pysafe_roles : "";
	bool		changed;
	List	   *names;
	ListCell   *lc;

	if (roles_looked_over != NULL && strcmp(roles_looked_over, value) == 0)
		return;
	if (!IsTransactionState() || IsParallelWorker())
		return;
	changed = roles_looked_over != NULL;
	if (changed)
		pfree(roles_looked_over);
	roles_looked_over = MemoryContextStrdup(TopMemoryContext, value);
	if (!changed || !superuser())
		return;
	if (pysafe_read_role_list(value, &names))
	{
		foreach(lc, names)
		{
			const char *name = (const char *) lfirst(lc);

			if (!OidIsValid(get_role_oid(name, true)))
				ereport(WARNING,
						(errmsg("pysafe.roles names \"%s\", which matches no role: it restricts nobody", name),
						 errhint("Role names are case-sensitive; \"python -m pysafe audit\" suggests the role meant.")));
		}
	}
	list_free_deep(names);
}

/* Syscache callback on pg_authid / pg_auth_members. */
static void
restriction_cache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	restriction_cache_reset();
}

/*
 * Is the role the named role, or a member of it at any depth?  Unknown names
 * are not.  Also for transitions.c.
 */
bool
pysafe_role_is_or_joins(Oid role, const char *name)
{
	Oid			listed = get_role_oid(name, true);

	return OidIsValid(listed) &&
		(listed == role || is_member_of_role_nosuper(role, listed));
}

/* Compute, without the cache, whether the session user is restricted. */
static bool
compute_session_restricted(Oid session_user)
{
	List	   *names;
	ListCell   *lc;
	bool		restricted = false;

	/* No session user yet (backend start, background workers): nothing to restrict. */
	if (!OidIsValid(session_user))
		return false;
	/* A role dropped under its open session is a member of nothing: fail closed. */
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(session_user)))
		return true;
	if (superuser_arg(session_user))
		return false;
	if (pysafe_role_is_or_joins(session_user, RESTRICTED_GROUP))
		return true;
	if (pysafe_roles == NULL || pysafe_roles[0] == '\0')
		return false;

	if (!pysafe_read_role_list(pysafe_roles, &names))
	{
		/* The check hook prevents this; refuse to guess and restrict. */
		return true;
	}
	foreach(lc, names)
	{
		/* Unknown names are ignored, as in SafeSession. */
		if (pysafe_role_is_or_joins(session_user, (const char *) lfirst(lc)))
		{
			restricted = true;
			break;
		}
	}
	list_free_deep(names);
	return restricted;
}

/* Cache the answer for a session user; returns it. */
static bool
remember_restriction(Oid session_user, bool restricted)
{
	restriction_cache_user = session_user;
	restriction_cache_value = restricted;
	restriction_cache_valid = true;
	return restricted;
}

/*
 * Is this session restricted?  Cached per session user.  Catalog lookups
 * need a transaction; outside one nothing can execute, so the last answer
 * (or "not restricted" when there is none) is good enough.
 */
static bool
session_is_restricted(void)
{
	Oid			session_user = GetSessionUserId();

	if (restriction_cache_valid && restriction_cache_user == session_user)
		return restriction_cache_value;
	if (!IsTransactionState())
		return false;
	/* A role dropped under its session stays restricted (compute_session_restricted). */
	return remember_restriction(session_user, compute_session_restricted(session_user));
}

/* The settings as the flags argument of the Python policy. */
static int
current_policy_flags(void)
{
	int			flags = 0;

	if (pysafe_block_dml)
		flags |= POLICY_BLOCK_DML;
	if (pysafe_block_ddl)
		flags |= POLICY_BLOCK_DDL;
	if (pysafe_block_c_functions)
		flags |= POLICY_BLOCK_C_FUNCTIONS;
	if (pysafe_block_all_c_functions)
		flags |= POLICY_BLOCK_ALL_C;
	if (pysafe_force_read_only)
		flags |= POLICY_FORCE_READ_ONLY;
	if (pysafe_lock_session_authorization)
		flags |= POLICY_LOCK_SESSION_AUTH;
	if (GetSessionUserId() != GetAuthenticatedUserId())
		flags |= POLICY_SWITCHED_SESSION_AUTH;
	if (pysafe_allow_temp_objects)
		flags |= POLICY_ALLOW_TEMP_OBJECTS;
	if (pysafe_read_write_requests == READ_WRITE_IGNORE)
		flags |= POLICY_IGNORE_READ_WRITE;
	return flags;
}

/* Append "key": "value" (JSON-escaped) to a log line under construction. */
static void
append_json_field(StringInfo line, const char *key, const char *value)
{
	if (line->len > 1)
		appendStringInfoString(line, ", ");
	escape_json(line, key);
	appendStringInfoString(line, ": ");
	escape_json(line, value ? value : "");
}

/*
 * Write one structured line about a refusal to the server log (a JSON
 * object after "pysafe refusal: "), unless pysafe.log_refusals is off.
 * ``kind`` says what was refused (a command tag, FUNCTION name, or
 * REPLICATION), ``rule`` which rule refused it.
 */
static void
write_refusal_line(const char *role, const char *current_role, const char *database,
				   const char *kind, const char *rule, const char *message,
				   const char *statement)
{
	StringInfoData line;

	if (!pysafe_log_refusals)
		return;
	initStringInfo(&line);
	appendStringInfoChar(&line, '{');
	append_json_field(&line, "role", role);
	append_json_field(&line, "current_role", current_role);
	append_json_field(&line, "database", database);
	append_json_field(&line, "kind", kind);
	append_json_field(&line, "rule", rule);
	append_json_field(&line, "message", message);
	append_json_field(&line, "statement", statement);
	appendStringInfoChar(&line, '}');
	pysafe_log_refusal_line(line.data);	/* log_guard.c: the only line with the marker */
	pfree(line.data);
}

/*
 * Count a refusal of this session (refusals.c), then write_refusal_line()
 * for its running statement.  Every refusal of a running session passes
 * here.
 */
static void
record_refusal(const char *kind, const char *rule, const char *message)
{
	const char *statement = debug_query_string ? debug_query_string : "";
	int			length = strlen(statement);

	pysafe_count_refusal(MyDatabaseId, GetSessionUserId(), rule);
	if (!pysafe_log_refusals)
		return;
	if (length > pysafe_log_statement_length)
		length = pg_mbcliplen(statement, length, pysafe_log_statement_length);
	write_refusal_line(GetUserNameFromId(GetSessionUserId(), true),
					   GetUserNameFromId(GetUserId(), true),
					   get_database_name(MyDatabaseId),
					   kind, rule, message, pnstrdup(statement, length));
}

/* The refusal's hint: how this session came to be restricted. */
static const char *
restriction_hint(void)
{
	if (IsTransactionState() && pysafe_role_is_or_joins(GetSessionUserId(), RESTRICTED_GROUP))
		return "This session is read-only because its session user was restricted with pysafe.restrict(), directly or through membership; SELECT * FROM pysafe.status() shows the path.";
	return "This session is read-only because its session user is listed, directly or through membership, in pysafe.roles; SELECT * FROM pysafe.status() shows the path.";
}

/* Count and log, then raise, the read-only-session refusal every pysafe check uses. */
static void
refuse(const char *kind, const char *rule, const char *message, const char *detail)
{
	record_refusal(kind, rule, message);
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("%s", message),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("%s", restriction_hint())));
}

/*
 * The last answer of session_is_restricted() for the current session user,
 * without catalog lookups (false when there is none): for emit_log_hook,
 * which must not fail.
 */
bool
pysafe_session_restricted_cached(void)
{
	return restriction_cache_user == GetSessionUserId() && restriction_cache_value;
}

/* Is the session restricted by an answer no change has invalidated since?  No lookups. */
bool
pysafe_session_restricted_still(void)
{
	return restriction_cache_valid && pysafe_session_restricted_cached();
}

/* Make the current transaction read-only when force_read_only is on. */
static void
force_read_only(void)
{
	if (pysafe_force_read_only && !XactReadOnly)
		XactReadOnly = true;
}

/*
 * A restricted login keeps default_transaction_read_only on: set it again
 * whenever it is found off (at login, at the first statement, after RESET
 * ALL, DISCARD ALL or set_config()).  Only for the login identity: a login
 * that switched with SET SESSION AUTHORIZATION and switches back must find
 * its own defaults untouched.  Callers have established that the session is
 * restricted.
 */
static void
keep_login_defaults(void)
{
	if (pysafe_force_read_only && !DefaultXactReadOnly && !IsInParallelMode() &&
		GetSessionUserId() == GetAuthenticatedUserId())
		SetConfigOption("default_transaction_read_only", "on", PGC_SUSET, PGC_S_SESSION);
}

/*
 * End the session if it left the identity pysafe.lock_session_authorization
 * locks.  RESET SESSION AUTHORIZATION, DISCARD ALL, set_config() with NULL
 * and the end of a SET LOCAL all change the session user without a check
 * hook, so this runs at the top of every hook: whatever path switched the
 * identity back, nothing runs under it.
 */
static void
guard_locked_identity(void)
{
	if (likely(!OidIsValid(locked_identity)))
		return;
	if (!pysafe_lock_session_authorization)
	{
		locked_identity = InvalidOid;	/* the DBA lifted the lock */
		return;
	}
	if (GetSessionUserId() != locked_identity && !IsParallelWorker())
	{
		/* Counted under the restricted identity the session left. */
		pysafe_count_refusal(MyDatabaseId, locked_identity, "locked_identity");
		ereport(FATAL,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("terminating connection: it left the restricted identity locked by pysafe.lock_session_authorization"),
				 errhint("Open a new connection for each identity; a locked session cannot switch back.")));
	}
}

/*
 * End a restricted session that acts as a superuser role.  check_role_guarded()
 * refuses SET ROLE to one, but a session that was in such a role before it
 * became restricted (pysafe.restrict(), a reload of pysafe.roles) keeps it:
 * as a superuser it could change any superuser-only setting.  Only a role
 * set with SET ROLE counts (InvalidOid otherwise), so the common case costs
 * one comparison.
 */
static void
guard_superuser_role(void)
{
	Oid			role = GetCurrentRoleId();

	if (OidIsValid(role) && superuser_arg(role))
	{
		pysafe_count_refusal(MyDatabaseId, GetSessionUserId(), "superuser_role");
		ereport(FATAL,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("terminating connection: a read-only session may not act as superuser role \"%s\"",
						GetUserNameFromId(role, true)),
				 errdetail("The session became restricted by pysafe while SET ROLE made it a superuser."),
				 errhint("Reconnect; restricted sessions cannot SET ROLE to a superuser role.")));
	}
}

/*
 * Is SET SESSION AUTHORIZATION locked for this session: did it switch
 * identity while pysafe.lock_session_authorization is on?  (Callers know
 * the session is restricted.)
 */
static bool
session_authorization_locked(void)
{
	return pysafe_lock_session_authorization &&
		GetSessionUserId() != GetAuthenticatedUserId();
}

/* Remember the restricted identity a locked session switched into. */
static void
note_locked_identity(void)
{
	if (!OidIsValid(locked_identity) && session_authorization_locked())
		locked_identity = GetSessionUserId();
}

/*
 * Do pysafe's checks apply to what runs now?  They do in parallel workers
 * too: a worker restores its leader's session user, and the functions it
 * calls are out of the leader's sight.  Workers cannot change settings, so
 * only the leader keeps the login defaults.
 */
static bool
checks_apply(void)
{
	guard_locked_identity();
	if (!session_is_restricted())
		return false;
	pysafe_guard_late_settings();	/* superuser_settings.c: once per backend */
	if (!IsParallelWorker())
	{
		guard_superuser_role();
		keep_login_defaults();
		note_locked_identity();
	}

	/*
	 * A transaction PostgreSQL starts outside ExecutorStart and
	 * ProcessUtility (the function-call protocol message, the next
	 * transaction after COMMIT inside DO or a procedure) takes its mode from
	 * default_transaction_read_only, which a switched identity or a reset
	 * may have left off; every hook forces it.  Not while a policy-approved
	 * temporary write runs with read-only lifted.
	 */
	if (temporary_write_running == T_Invalid)
		force_read_only();
	return true;
}

/* session_is_restricted(), for the other files of the shim; needs a transaction for a fresh answer. */
bool
pysafe_restricted_now(void)
{
	return session_is_restricted();
}

/* compute_session_restricted() for transitions.c: is this role restricted now? */
bool
pysafe_role_restricted(Oid role)
{
	return compute_session_restricted(role);
}

/* checks_apply(), for the other files of the shim. */
bool
pysafe_checks_apply(void)
{
	return checks_apply();
}

/* record_refusal(), for the other files of the shim. */
void
pysafe_record_refusal(const char *kind, const char *rule, const char *message)
{
	record_refusal(kind, rule, message);
}

/* refuse(), for the other files of the shim. */
void
pysafe_refuse(const char *kind, const char *rule, const char *message, const char *detail)
{
	refuse(kind, rule, message, detail);
}

/* ---------------------------------------------------------------------
 * Settings guards (GUC check hooks)
 *
 * A check hook runs on every path that sets a value: SET, set_config()
 * (under any role, inside any function), function SET clauses, BEGIN and
 * SET TRANSACTION options, startup options and ALTER ROLE/DATABASE SET.
 * Resets take no check hook; those of the read-only settings are undone at
 * the next statement (keep_login_defaults, force_read_only) and those of
 * session_authorization by guard_locked_identity().
 * ---------------------------------------------------------------------
 */

/* Is the session restricted now?  Parallel workers restoring their leader's state are not asked. */
static bool
restricted_for_setting_change(void)
{
	return !InitializingParallelWorker && IsTransactionState() && session_is_restricted();
}

/* restricted_for_setting_change(), for the other files of the shim. */
bool
pysafe_restricted_for_setting_change(void)
{
	return restricted_for_setting_change();
}

/* Report a refused setting change from a check hook under a rule, with an audit line. */
bool
pysafe_refuse_setting_change(const char *name, const char *rule, const char *message)
{
	char		kind[NAMEDATALEN + 8];

	snprintf(kind, sizeof(kind), "SET %s", name);
	record_refusal(kind, rule, message);
	GUC_check_errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION);
	GUC_check_errmsg("%s", message);
	return false;
}

/* Report a refused setting change from a check hook, with an audit line. */
static bool
refuse_setting_change(const char *name, const char *message)
{
	return pysafe_refuse_setting_change(name, "protected_settings", message);
}

/*
 * Check hook of every pysafe.* setting: they are cluster-wide, so they come
 * only from postgresql.conf, ALTER SYSTEM (validated as a file value) or the
 * server's command line.  Per-database and per-role values (ALTER DATABASE
 * / ROLE SET), startup options and session changes are refused, whoever
 * asks: a role that reaches superuser through SET ROLE gets no further.
 */
static bool
check_cluster_setting(const char *name, GucSource source)
{
	if (source <= PGC_S_ARGV)
		return true;
	if (restricted_for_setting_change())
		return refuse_setting_change(name, "cannot change pysafe settings in a read-only session");
	GUC_check_errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM);
	GUC_check_errmsg("pysafe settings are cluster-wide; set %s in postgresql.conf or with ALTER SYSTEM, then reload", name);
	return false;
}

/* check_cluster_setting() for each boolean pysafe.* setting (the hook has no name argument). */
#define CLUSTER_BOOL_CHECK(fn, setting) \
static bool \
fn(bool *newval, void **extra, GucSource source) \
{ \
	return check_cluster_setting(setting, source); \
}
CLUSTER_BOOL_CHECK(check_block_dml, "pysafe.block_dml")
CLUSTER_BOOL_CHECK(check_block_ddl, "pysafe.block_ddl")
CLUSTER_BOOL_CHECK(check_block_c_functions, "pysafe.block_c_functions")
CLUSTER_BOOL_CHECK(check_block_all_c_functions, "pysafe.block_all_c_functions")
CLUSTER_BOOL_CHECK(check_force_read_only, "pysafe.force_read_only")
CLUSTER_BOOL_CHECK(check_lock_session_authorization, "pysafe.lock_session_authorization")
CLUSTER_BOOL_CHECK(check_log_refusals, "pysafe.log_refusals")
CLUSTER_BOOL_CHECK(check_allow_temp_objects, "pysafe.allow_temp_objects")

/* check_cluster_setting() for pysafe.read_write_requests. */
static bool
check_read_write_requests(int *newval, void **extra, GucSource source)
{
	return check_cluster_setting("pysafe.read_write_requests", source);
}

/* check_cluster_setting() for pysafe.log_statement_length. */
static bool
check_log_statement_length(int *newval, void **extra, GucSource source)
{
	return check_cluster_setting("pysafe.log_statement_length", source);
}

/*
 * A restricted session asks for a read-only setting to be off.  Under
 * read_write_requests = ignore the value becomes on, with a NOTICE: pooled
 * drivers that reset a connection with BEGIN READ WRITE or SET SESSION
 * CHARACTERISTICS ... READ WRITE keep working, and nothing can write.
 * Otherwise the change is refused.  Returns whether the hook may go on.
 */
static bool
keep_read_only(bool *newval, GucSource source, const char *name)
{
	if (*newval || !pysafe_force_read_only || source <= PGC_S_ARGV || source == PGC_S_TEST ||
		!restricted_for_setting_change())
		return true;
	if (pysafe_read_write_requests == READ_WRITE_IGNORE)
	{
		*newval = true;
		ereport(NOTICE,
				(errmsg("read-write request ignored: this session stays read-only"),
				 errdetail("%s stays on: pysafe restricts this session, and pysafe.read_write_requests is \"ignore\".",
						   name)));
		return true;
	}
	return refuse_setting_change(name,
								 "cannot modify read-only transaction settings in a read-only session");
}

/* Wrapped check hook of default_transaction_read_only: a restricted session keeps it on. */
static bool
check_default_read_only(bool *newval, void **extra, GucSource source)
{
	if (!keep_read_only(newval, source, "default_transaction_read_only"))
		return false;
	return prev_check_default_read_only ?
		prev_check_default_read_only(newval, extra, source) : true;
}

/* Wrapped check hook of transaction_read_only (SET TRANSACTION, BEGIN READ WRITE, set_config). */
static bool
check_transaction_read_only_guarded(bool *newval, void **extra, GucSource source)
{
	if (!keep_read_only(newval, source, "transaction_read_only"))
		return false;
	return prev_check_transaction_read_only ?
		prev_check_transaction_read_only(newval, extra, source) : true;
}

/* Wrapped check hook of session_authorization: a locked session keeps its identity. */
static bool
check_session_authorization_guarded(char **newval, void **extra, GucSource source)
{
	/* A restricted login may not change its identity at all (transitions.c). */
	if ((session_authorization_locked() && restricted_for_setting_change()) ||
		pysafe_login_may_not_switch(source))
		return refuse_setting_change("session_authorization",
									 "cannot change session authorization in a read-only session");
	if (prev_check_session_authorization &&
		!prev_check_session_authorization(newval, extra, source))
		return false;
	/* The assign hook locks a switch into a restricted role at once. */
	if (pysafe_lock_session_authorization)
		pysafe_note_identity_request(*newval);
	return true;
}

/*
 * Wrapped assign hook of session_authorization.  Resets reach no check hook
 * (set_config('session_authorization', NULL, false)), so when the session
 * has just left the identity pysafe.lock_session_authorization locks, end
 * it here, before anything else in the statement runs as the login.  At
 * the end of a transaction (a SET LOCAL undone at COMMIT) the transaction
 * is no longer in progress; guard_locked_identity() then ends the session
 * at its next hook.
 */
static void
assign_session_authorization_guarded(const char *newval, void *extra)
{
	if (prev_assign_session_authorization)
		prev_assign_session_authorization(newval, extra);

	/*
	 * Lock the identity from the statement that switched into it: an abort,
	 * ROLLBACK TO SAVEPOINT or parser error may restore the login before any
	 * hook runs, and guard_locked_identity() must already know the lock.
	 */
	if (pysafe_switched_into_restricted() && IsTransactionState())
		note_locked_identity();
	if (OidIsValid(locked_identity) && IsTransactionState())
		guard_locked_identity();
}

/*
 * Wrapped check hook of role (SET ROLE, set_config('role', ...)): a
 * restricted session may not become a superuser.  As one it could change
 * any superuser-only setting and call superuser-only functions; its session
 * user stays restricted, but that is too much reach for a read-only session.
 */
static bool
check_role_guarded(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strcmp(*newval, "none") != 0 && source > PGC_S_ARGV &&
		restricted_for_setting_change())
	{
		Oid			role = get_role_oid(*newval, true);

		if (OidIsValid(role) && superuser_arg(role))
			return refuse_setting_change("role",
										 "cannot SET ROLE to a superuser role in a read-only session");
	}
	return prev_check_role ? prev_check_role(newval, extra, source) : true;
}

/* The GUC table entry of a core setting, or NULL. */
static struct config_generic *
find_core_setting(const char *name)
{
#if PG_VERSION_NUM >= 160000
	return find_option(name, false, true, ERROR);
#else
	struct config_generic **variables = get_guc_variables();
	int			count = GetNumConfigOptions();
	int			i;

	for (i = 0; i < count; i++)
		if (strcmp(variables[i]->name, name) == 0)
			return variables[i];
	return NULL;
#endif
}

/* The GUC table entry of a core setting pysafe guards; without it the server cannot start. */
static struct config_generic *
guarded_core_setting(const char *name, enum config_type type)
{
	struct config_generic *record = find_core_setting(name);

	if (record == NULL || record->vartype != type)
		elog(FATAL, "pysafe: setting %s not found", name);
	return record;
}

/*
 * Put pysafe's guards in front of the hooks of the core settings that could
 * lift read-only, undo a locked SET SESSION AUTHORIZATION, or make a
 * restricted session a superuser.  Runs once, in the postmaster; backends
 * inherit the tables.
 */
static void
guard_core_settings(void)
{
	struct config_bool *default_read_only = (struct config_bool *)
		guarded_core_setting("default_transaction_read_only", PGC_BOOL);
	struct config_bool *read_only = (struct config_bool *)
		guarded_core_setting("transaction_read_only", PGC_BOOL);
	struct config_string *authorization = (struct config_string *)
		guarded_core_setting("session_authorization", PGC_STRING);
	struct config_string *role = (struct config_string *)
		guarded_core_setting("role", PGC_STRING);

	prev_check_default_read_only = default_read_only->check_hook;
	default_read_only->check_hook = check_default_read_only;
	prev_check_transaction_read_only = read_only->check_hook;
	read_only->check_hook = check_transaction_read_only_guarded;
	prev_check_session_authorization = authorization->check_hook;
	authorization->check_hook = check_session_authorization_guarded;
	prev_assign_session_authorization = authorization->assign_hook;
	authorization->assign_hook = assign_session_authorization_guarded;
	prev_check_role = role->check_hook;
	role->check_hook = check_role_guarded;
}

/* ---------------------------------------------------------------------
 * Executor checks
 * ---------------------------------------------------------------------
 */

/* Does the plan take row locks (SELECT ... FOR UPDATE/SHARE)? */
static bool
plan_locks_rows(PlannedStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->rowMarks)
	{
		PlanRowMark *mark = (PlanRowMark *) lfirst(lc);

		if (RowMarkRequiresRowShareLock(mark->markType))
			return true;
	}
	return false;
}

/* Is the relation one of this session's own temporary tables (not another session's)? */
static bool
is_own_temporary_relation(Oid relid)
{
	return get_rel_persistence(relid) == RELPERSISTENCE_TEMP &&
		isTempNamespace(get_rel_namespace(relid));
}

/* is_own_temporary_relation(), for the shim's other files. */
bool
pysafe_is_own_temporary_relation(Oid relid)
{
	return is_own_temporary_relation(relid);
}

/*
 * Does the plan write only the session's temporary tables, and may it
 * (pysafe.allow_temp_objects)?  Result relations include those of
 * data-modifying WITH clauses.
 */
static bool
plan_writes_only_temporary_tables(PlannedStmt *stmt)
{
	ListCell   *lc;

	if (!pysafe_allow_temp_objects || stmt->resultRelations == NIL)
		return false;
	foreach(lc, stmt->resultRelations)
	{
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), stmt->rtable);

		if (rte->rtekind != RTE_RELATION || !is_own_temporary_relation(rte->relid))
			return false;
	}
	return true;
}

/* The plan's command tag, for refusals (not computed for plans that pass). */
static const char *
plan_command(PlannedStmt *stmt)
{
	return GetCommandTagName(CreateCommandTag((Node *) stmt));
}

/* Refuse plans that write: DML, data-modifying WITH, row locks, SELECT INTO. */
static void
check_plan_is_read_only(QueryDesc *queryDesc)
{
	PlannedStmt *stmt = queryDesc->plannedstmt;
	char		message[128];

	/*
	 * A table made by SELECT INTO / EXPLAIN ANALYZE CREATE TABLE AS gets past
	 * PostgreSQL's own read-only check, so read-only forcing refuses it too;
	 * unless it is a temporary table the policy allowed.
	 */
	if ((pysafe_block_dml || pysafe_force_read_only) &&
		queryDesc->dest != NULL && queryDesc->dest->mydest == DestIntoRel &&
		temporary_write_running != T_CreateTableAsStmt)
		refuse("CREATE TABLE AS", "create_table_as",
			   "cannot execute CREATE TABLE AS in a read-only session", NULL);
	if (!pysafe_block_dml)
		return;
	if (!plan_writes_only_temporary_tables(stmt))
	{
		if (queryDesc->operation != CMD_SELECT)
		{
			snprintf(message, sizeof(message),
					 "cannot execute %s in a read-only session", plan_command(stmt));
			refuse(plan_command(stmt), "dml", message, NULL);
		}
		if (stmt->hasModifyingCTE)
			refuse(plan_command(stmt), "modifying_cte",
				   "cannot execute a data-modifying WITH clause in a read-only session", NULL);
	}
	if (plan_locks_rows(stmt))
		refuse(plan_command(stmt), "row_locks",
			   "cannot execute SELECT FOR UPDATE/SHARE in a read-only session", NULL);
}

/* Run the next ExecutorStart (a previous hook's or the standard one). */
static void
call_next_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * ExecutorStart hook: force read-only, then check the plan.  An
 * EXPLAIN-only start runs in the state explain.c gives it, and any other
 * start is checked in full, also inside a plain EXPLAIN.
 */
static void
pysafe_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PysafeExplainState state;
	bool		checked;

	pysafe_notice_transitions(true);
	warn_unknown_listed_roles();
	checked = checks_apply();
	if (checked && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		force_read_only();
		check_plan_is_read_only(queryDesc);
	}
	state = pysafe_explain_state_for_start(queryDesc->plannedstmt, eflags);
	if (state == pysafe_explain_state())
		call_next_ExecutorStart(queryDesc, eflags);
	else
	{
		state = pysafe_explain_set(state);
		PG_TRY();
		{
			call_next_ExecutorStart(queryDesc, eflags);
		}
		PG_FINALLY();
		{
			pysafe_explain_set(state);
		}
		PG_END_TRY();
	}
	if (checked)
		pysafe_note_checked_plan(queryDesc);	/* ExecutorRun runs no other */
}

/*
 * post_parse_analyze_hook: parse analysis has just locked the target of a
 * write with ROW EXCLUSIVE (in PREPARE, plain EXPLAIN, a Parse message, a
 * function body), before any other check.  Refuse there what the executor
 * check or read-only forcing would refuse, so the abort releases the lock
 * (parse_locks.c).  The hook has taken a JumbleState since PostgreSQL 14.
 */
static void
pysafe_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	if (!pysafe_query_may_write(query) || !IsTransactionState())
		return;
	/* A session that became restricted is ended before it is refused. */
	pysafe_notice_transitions(true);
	if (checks_apply())
		pysafe_refuse_parse_locks(query, pysafe_block_dml, pysafe_force_read_only,
								  pysafe_allow_temp_objects);
}

/* ---------------------------------------------------------------------
 * Function checks (fmgr hooks)
 * ---------------------------------------------------------------------
 */

/*
 * Refuse a function that may have side effects (functions.c says which);
 * by_executor when the executor announces the call rather than fmgr binding
 * it, calling when fmgr's wrapper is about to call it.  Returns true when
 * the check is left to the call (a plain EXPLAIN binding a volatile
 * function, explain.c): the caller then asks for fmgr's wrapper.
 */
static bool
check_function_allowed(Oid fn_oid, bool by_executor, bool calling)
{
	PysafeFunctionRule rule;
	char		detail[PYSAFE_DETAIL_SIZE];
	char		kind[NAMEDATALEN + 16];

	if (!checks_apply())		/* also guards a locked identity */
		return false;
	rule = pysafe_function_rule(fn_oid, pysafe_block_all_c_functions, by_executor,
								calling ? PYSAFE_RUNNING : pysafe_explain_state(),
								detail, sizeof(detail));
	if (rule == PYSAFE_FUNCTION_ALLOWED)
		return false;
	if (rule == PYSAFE_FUNCTION_DEFERRED)
		return true;
	/* Entry points of refused built-ins: refused as the built-in is (below). */
	if (rule == PYSAFE_RULE_BUILTIN_FUNCTIONS ?
		!(pysafe_block_c_functions || pysafe_force_read_only) : !pysafe_block_c_functions)
		return false;
	snprintf(kind, sizeof(kind), "FUNCTION %s", get_func_name(fn_oid));
	refuse(kind, pysafe_rule_name(rule),
		   "cannot execute functions that may have side effects in a read-only session",
		   detail);
	return false;				/* not reached */
}

/*
 * needs_fmgr_hook: check each function fmgr binds; ask for fmgr's wrapper
 * only for one a plain EXPLAIN binds whose check waits for a call.
 */
static bool
pysafe_needs_fmgr_hook(Oid fn_oid)
{
	bool		deferred;

	pysafe_notice_transitions(false);
	pysafe_record_call(fn_oid, false);	/* pysafe.check() describing a plan */
	deferred = check_function_allowed(fn_oid, false, false);
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn_oid))
		return true;
	return deferred;
}

/*
 * fmgr_hook: SECURITY DEFINER and SET-clause functions bypass needs_fmgr_hook,
 * but their wrapper always calls fmgr_hook, so check them at their start;
 * and the functions a plain EXPLAIN bound with the wrapper, now called.
 */
static void
pysafe_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	pysafe_notice_transitions(false);
	if (event == FHET_START)
		check_function_allowed(flinfo->fn_oid, false, true);
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, private);
}

/* ---------------------------------------------------------------------
 * Built-in functions with side effects (object access hook)
 * ---------------------------------------------------------------------
 */

/* Refuse a built-in function the review does not clear (functions.c). */
static void
check_builtin_function(Oid fn_oid)
{
	char		detail[PYSAFE_DETAIL_SIZE];
	char		kind[NAMEDATALEN + 16];

	if (!pysafe_builtin_refused(fn_oid, pysafe_explain_state(), detail, sizeof(detail)))
		return;
	snprintf(kind, sizeof(kind), "FUNCTION %s", get_func_name(fn_oid));
	refuse(kind, "builtin_functions",
		   "cannot execute functions that may have side effects in a read-only session",
		   detail);
}

/* object_access_hook: the executor announces every function it will call. */
static void
pysafe_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId, void *arg)
{
	guard_locked_identity();
	if (access != OAT_FUNCTION_EXECUTE)
	{
		/* Namespace searches and the like: called often, nothing to judge. */
		if (prev_object_access_hook)
			prev_object_access_hook(access, classId, objectId, subId, arg);
		return;
	}
	pysafe_notice_transitions(false);
	pysafe_record_call(objectId, true); /* pysafe.check() describing a plan */

	/*
	 * Listed built-ins write even in a read-only transaction (large objects),
	 * so read-only forcing refuses them as well as block_c_functions does.
	 */
	if (objectId < FirstGenbkiObjectId && checks_apply() &&
		(pysafe_block_c_functions || pysafe_force_read_only))
		check_builtin_function(objectId);

	/*
	 * Other functions too, before the first call: a SECURITY DEFINER one is
	 * otherwise checked only when called (fmgr_hook), and a strict one given
	 * a NULL is never called.  Refusing at plan start answers the same for
	 * all.  A query calling a handler or trigger function directly is judged
	 * here too; the trigger and handler machinery never announces its calls.
	 * One a plain EXPLAIN defers is bound next, through needs_fmgr_hook.
	 */
	if (objectId >= FirstGenbkiObjectId)
		(void) check_function_allowed(objectId, true, false);
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
}

/* ---------------------------------------------------------------------
 * Utility veto
 * ---------------------------------------------------------------------
 */

/*
 * Settings the fast path leaves to the Python policy: those whose change
 * could lift read-only (the policy has the same list), and
 * session_authorization, which pysafe.lock_session_authorization can lock.
 */
static bool
is_protected_setting(const char *name)
{
	return name == NULL ||
		pg_strcasecmp(name, "session_authorization") == 0 ||	/* lockable */
		pg_strcasecmp(name, "default_transaction_read_only") == 0 ||
		pg_strcasecmp(name, "transaction_read_only") == 0 ||
		pg_strncasecmp(name, "pysafe.", 7) == 0;
}

/* Does EXPLAIN name the ANALYZE option at all (on or off)?  Then Python decides. */
static bool
explain_mentions_analyze(ExplainStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *option = (DefElem *) lfirst(lc);

		if (strcmp(option->defname, "analyze") == 0)
			return true;
	}
	return false;
}

/*
 * Does EXPLAIN explain a plain SELECT: no INTO, no data-modifying WITH?
 * Then even with ANALYZE it runs only a query, which meets the executor
 * checks; the policy allows it under every setting.  BI tools send these
 * with megabytes of constants, which Python need not read again.
 */
static bool
explains_plain_select(ExplainStmt *stmt)
{
	Query	   *query = (Query *) stmt->query;

	return query != NULL && IsA(query, Query) && query->utilityStmt == NULL &&
		query->commandType == CMD_SELECT && !query->hasModifyingCTE;
}

/* Is the constant one PostgreSQL reads as boolean true (on, true, yes, 1 ...)? */
static bool
constant_is_true(Node *node)
{
	bool		value = false;

	if (node == NULL || !IsA(node, A_Const))
		return false;
#if PG_VERSION_NUM >= 150000
	if (((A_Const *) node)->isnull)
		return false;
#endif
	node = (Node *) &((A_Const *) node)->val;
	switch (nodeTag(node))
	{
#if PG_VERSION_NUM >= 150000
		case T_Boolean:
			return boolVal(node);
#endif
		case T_Integer:
			return intVal(node) == 1;
		case T_String:
			return parse_bool(strVal(node), &value) && value;
		default:
			return false;
	}
}

/*
 * Do transaction options (BEGIN, START TRANSACTION, SET TRANSACTION, SET
 * SESSION CHARACTERISTICS) leave read-only alone?  Isolation levels,
 * [NOT] DEFERRABLE and READ ONLY do; anything else goes to Python.
 */
static bool
transaction_options_keep_read_only(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *option = (DefElem *) lfirst(lc);

		if (!IsA(option, DefElem))
			return false;
		if (strcmp(option->defname, "transaction_read_only") == 0)
		{
			if (!constant_is_true(option->arg))
				return false;
		}
		else if (strcmp(option->defname, "transaction_isolation") != 0 &&
				 strcmp(option->defname, "transaction_deferrable") != 0)
			return false;
	}
	return true;
}

/* Does a SET keep the read-only settings on (SET ... = on, true, 1 ...)? */
static bool
sets_read_only_on(VariableSetStmt *set)
{
	return set->kind == VAR_SET_VALUE && set->name != NULL &&
		(pg_strcasecmp(set->name, "default_transaction_read_only") == 0 ||
		 pg_strcasecmp(set->name, "transaction_read_only") == 0) &&
		list_length(set->args) == 1 && constant_is_true(linitial(set->args));
}

/*
 * The C fast path: statements that are safe whatever their details, so the
 * Python policy need not be asked.  Anything else goes to Python.  A test
 * (tests/test_fast_path.py) checks that everything allowed here is allowed
 * by the Python policy too.
 */
static bool
utility_fast_path_allows(Node *stmt)
{
	switch (nodeTag(stmt))
	{
			/* Reads, and session state; their queries meet the executor checks. */
		case T_VariableShowStmt:
		case T_DeclareCursorStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
		case T_ExecuteStmt:
		case T_DeallocateStmt:
		case T_ListenStmt:
		case T_UnlistenStmt:
		case T_NotifyStmt:
		case T_CallStmt:
		case T_ConstraintsSetStmt:	/* when deferred constraints are checked */
			return true;
		case T_PrepareStmt:
			{
				Node	   *query = ((PrepareStmt *) stmt)->query;

				/* A write's parse analysis locks its target: Python decides. */
				return IsA(query, SelectStmt) && ((SelectStmt *) query)->withClause == NULL;
			}
		case T_DiscardStmt:
			/* DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT. */
			return ((DiscardStmt *) stmt)->target != DISCARD_ALL ||
				!session_authorization_locked();
		case T_LockStmt:
			/* Up to ROW SHARE: no lock a writer needs (pg_dump's ACCESS SHARE). */
			return ((LockStmt *) stmt)->mode <= RowShareLock;
		case T_ExplainStmt:
			{
				ExplainStmt *explain = (ExplainStmt *) stmt;

				/* A write's plan takes the write's locks: Python decides. */
				if (explain->query == NULL || !IsA(explain->query, Query) ||
					pysafe_query_may_write((Query *) explain->query))
					return false;
				return !explain_mentions_analyze(explain) || explains_plain_select(explain);
			}
		case T_CopyStmt:
			{
				CopyStmt   *copy = (CopyStmt *) stmt;

				/* COPY ... TO STDOUT; files, programs and COPY FROM go to Python. */
				return !copy->is_from && copy->filename == NULL;
			}
		case T_TransactionStmt:
			{
				TransactionStmt *txn = (TransactionStmt *) stmt;

				/* BEGIN/START asking for READ WRITE, and 2PC, go to Python. */
				switch (txn->kind)
				{
					case TRANS_STMT_BEGIN:
					case TRANS_STMT_START:
						return transaction_options_keep_read_only(txn->options);
					case TRANS_STMT_COMMIT:
					case TRANS_STMT_ROLLBACK:
					case TRANS_STMT_SAVEPOINT:
					case TRANS_STMT_RELEASE:
					case TRANS_STMT_ROLLBACK_TO:
						return true;
					default:
						return false;
				}
			}
		case T_VariableSetStmt:
			{
				VariableSetStmt *set = (VariableSetStmt *) stmt;

				switch (set->kind)
				{
					case VAR_SET_VALUE:
						return !is_protected_setting(set->name) || sets_read_only_on(set);
					case VAR_SET_CURRENT:
						/* FROM CURRENT keeps the value in force (the check hooks guard it too). */
						if (set->name != NULL &&
							(pg_strcasecmp(set->name, "default_transaction_read_only") == 0 ||
							 pg_strcasecmp(set->name, "transaction_read_only") == 0))
							return true;
						return !is_protected_setting(set->name);
					case VAR_SET_DEFAULT:
					case VAR_RESET:
						return !is_protected_setting(set->name);
					case VAR_RESET_ALL:
						/* session_authorization is not among what it resets. */
						return true;
					case VAR_SET_MULTI:
						/* SET TRANSACTION / SESSION CHARACTERISTICS without READ WRITE. */
						return set->name != NULL &&
							(strcmp(set->name, "TRANSACTION") == 0 ||
							 strcmp(set->name, "SESSION CHARACTERISTICS") == 0) &&
							transaction_options_keep_read_only(set->args);
					default:
						return false;
				}
			}
		default:
			return false;
	}
}

/* ---------------------------------------------------------------------
 * Temporary writes: the shim's own check of a "+temporary" reply
 * ---------------------------------------------------------------------
 */

/* Does a CREATE name a temporary table (TEMP, or the pg_temp schema)? */
static bool
names_temporary_table(RangeVar *rel)
{
	return rel != NULL &&
		(rel->relpersistence == RELPERSISTENCE_TEMP ||
		 (rel->schemaname != NULL && strcmp(rel->schemaname, "pg_temp") == 0));
}

/* Does the name resolve, as the session resolves it now, to one of its temporary tables? */
static bool
resolves_to_temporary(RangeVar *rel, bool missing_ok)
{
	Oid			relid = RangeVarGetRelid(rel, NoLock, true);

	if (!OidIsValid(relid))
		return missing_ok;
	return is_own_temporary_relation(relid);
}

/*
 * Confirm a "+temporary" reply from the server's own tree and catalogs:
 * pysafe.allow_temp_objects is on, and the statement creates, empties or
 * drops temporary tables only.  The shim lifts read-only on nothing less.
 */
static bool
temporary_write_confirmed(Node *stmt)
{
	ListCell   *lc;

	if (!pysafe_allow_temp_objects)
		return false;
	switch (nodeTag(stmt))
	{
		case T_CreateStmt:
			{
				CreateStmt *create = (CreateStmt *) stmt;

				return create->inhRelations == NIL && create->partbound == NULL &&
					names_temporary_table(create->relation) &&
					pysafe_foreign_keys_temporary(create);
			}
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *ctas = (CreateTableAsStmt *) stmt;

				return ctas->objtype == OBJECT_TABLE && ctas->into != NULL &&
					names_temporary_table(ctas->into->rel);
			}
		case T_DropStmt:
			{
				DropStmt   *drop = (DropStmt *) stmt;

				if (drop->removeType != OBJECT_TABLE || drop->objects == NIL)
					return false;
				foreach(lc, drop->objects)
				{
					RangeVar   *rel = makeRangeVarFromNameList((List *) lfirst(lc));

					if (!resolves_to_temporary(rel, drop->missing_ok))
						return false;
				}
				return true;
			}
		case T_TruncateStmt:
			{
				TruncateStmt *truncate = (TruncateStmt *) stmt;

				if (truncate->relations == NIL)
					return false;
				foreach(lc, truncate->relations)
				{
					if (!resolves_to_temporary((RangeVar *) lfirst(lc), false))
						return false;
				}
				return true;
			}
		default:
			return false;
	}
}

/* The statement's own text out of a possibly multi-statement string. */
static char *
statement_text(PlannedStmt *pstmt, const char *queryString)
{
	int			location = pstmt->stmt_location;
	int			length = pstmt->stmt_len;
	int			total;

	if (queryString == NULL)
		return pstrdup("");
	total = strlen(queryString);
	if (location < 0 || location > total)
		return pstrdup(queryString);
	if (length <= 0 || location + length > total)
		length = total - location;
	return pnstrdup(queryString + location, length);
}

/*
 * Find the genuine policy entry point: pysafe_internal.decide_utility(text, text,
 * text, integer), owned by a superuser and a member of the pysafe
 * extension.  A look-alike created by anyone else is never called.
 */
static Oid
lookup_policy_function_uncached(const char **why)
{
	Oid			argtypes[POLICY_FUNCTION_ARGS] = {TEXTOID, TEXTOID, TEXTOID, INT4OID};
	Oid			extoid;
	Oid			nspoid;
	Oid			funcoid;
	Oid			owner;
	HeapTuple	tuple;

	extoid = get_extension_oid(POLICY_EXTENSION, true);
	if (!OidIsValid(extoid))
	{
		*why = "the pysafe extension is not installed in this database";
		return InvalidOid;
	}
	/* An exact catalog lookup: no search_path, no ACL checks, no overloading. */
	nspoid = get_namespace_oid(POLICY_SCHEMA, true);
	tuple = OidIsValid(nspoid) ?
		SearchSysCache3(PROCNAMEARGSNSP, CStringGetDatum(POLICY_FUNCTION),
						PointerGetDatum(buildoidvector(argtypes, POLICY_FUNCTION_ARGS)),
						ObjectIdGetDatum(nspoid)) : NULL;
	if (!HeapTupleIsValid(tuple))
	{
		*why = "function pysafe_internal.decide_utility(text, text, text, integer) is missing";
		return InvalidOid;
	}
	funcoid = ((Form_pg_proc) GETSTRUCT(tuple))->oid;
	owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	if (getExtensionOfObject(ProcedureRelationId, funcoid) != extoid)
	{
		*why = "pysafe_internal.decide_utility is not a member of the pysafe extension";
		return InvalidOid;
	}
	if (!superuser_arg(owner))
	{
		*why = "pysafe_internal.decide_utility is not owned by a superuser";
		return InvalidOid;
	}
	return funcoid;
}

/*
 * The policy entry point, looked up once and kept until pg_proc or pg_authid
 * changes (policy_function_invalidated: a new function, a new owner, an
 * owner no longer superuser): the lookup scans pg_extension and pg_depend,
 * which cost more than a remembered verdict.  Taking the function out of the
 * extension changes only pg_depend; only a superuser can, and the session
 * keeps the genuine function it found until the next pg_proc change.
 */
static Oid
lookup_policy_function(const char **why)
{
	if (!OidIsValid(policy_function_oid))
		policy_function_oid = lookup_policy_function_uncached(why);
	return policy_function_oid;
}

/* Syscache callback: a function or role changed, perhaps the entry point or its owner. */
static void
policy_function_invalidated(Datum arg, int cacheid, uint32 hashvalue)
{
	policy_function_oid = InvalidOid;
}

/*
 * An error message from PL/Python without the "plpy.Error: " or
 * "spiexceptions.Name: " PL/Python puts before it (pysafe_internal.without_python_prefix
 * has the same rule).  Other Python exception names ("KeyError: ") stay.
 */
static const char *
without_python_prefix(const char *message)
{
	const char *rest;

	if (message == NULL)
		return "";
	if (strncmp(message, "plpy.", 5) == 0)
		rest = message + 5;
	else if (strncmp(message, "spiexceptions.", 14) == 0)
		rest = message + 14;
	else
		return message;
	while (isalpha((unsigned char) *rest))
		rest++;
	if (rest[0] == ':' && rest[1] == ' ')
		return rest + 2;
	return message;
}

/*
 * An error context without the part PL/Python added (its traceback and the
 * "PL/Python function" line): what the callers around the statement added
 * stays.  NULL when nothing else is left.
 */
static char *
without_python_context(const char *context)
{
	const char *line = context;

	if (context == NULL ||
		(strncmp(context, "Traceback (most recent call last):", 34) != 0 &&
		 strncmp(context, "PL/Python function ", 19) != 0))
		return context ? pstrdup(context) : NULL;
	/* The traceback's own lines are indented; its last line is not. */
	while (strncmp(line, "PL/Python function ", 19) != 0)
	{
		line = strchr(line, '\n');
		if (line == NULL)
			return NULL;
		line++;
	}
	line = strchr(line, '\n');
	return line ? pstrdup(line + 1) : NULL;
}

/* Call the policy; NULL means allowed, otherwise its reply (see veto_by_python_policy). */
static text *
call_policy_function(Oid funcoid, const char *statement, const char *command_tag,
					 const char *reading)
{
	LOCAL_FCINFO(fcinfo, POLICY_FUNCTION_ARGS);
	FmgrInfo	flinfo;
	Datum		result;

	fmgr_info(funcoid, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, POLICY_FUNCTION_ARGS, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(statement);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = CStringGetTextDatum(command_tag);
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = CStringGetTextDatum(reading);
	fcinfo->args[2].isnull = false;
	fcinfo->args[3].value = Int32GetDatum(current_policy_flags());
	fcinfo->args[3].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		return NULL;
	return DatumGetTextPP(result);
}

/*
 * Ask the Python policy about one utility statement; refuse it when the
 * policy says so, cannot be found, or fails (fail closed).  Returns true
 * when the policy allowed it as a write to temporary tables only.
 */
static bool
veto_by_python_policy(PlannedStmt *pstmt, const char *queryString)
{
	const char *why = NULL;
	Oid			funcoid = lookup_policy_function(&why);
	const char *tag = GetCommandTagName(CreateCommandTag(pstmt->utilityStmt));
	char	   *statement = statement_text(pstmt, queryString);
	char	   *reading;
	char	   *question;
	Size		question_length = 0;
	uint64		generation;
	MemoryContext caller_context = CurrentMemoryContext;
	text	   *verdict = NULL;
	char	   *rule;
	char	   *message;
	char	   *detail;

	if (!OidIsValid(funcoid))
	{
		record_refusal(tag, "policy_unavailable", why);
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute %s in a read-only session: pysafe policy unavailable", tag),
				 errdetail("In database \"%s\", %s.",
						   get_database_name(MyDatabaseId), why),
				 errhint("A superuser should run \"python -m pysafe install\" to create the pysafe objects in every database.")));
	}

	/* The policy's own size bound (MAX_DECIDED_BYTES), kept without Python. */
	if (strlen(statement) > MAX_DECIDED_BYTES)
		refuse(tag, "too_large",
			   psprintf("cannot execute %s in a read-only session: pysafe could not verify it", tag),
			   psprintf("The statement is longer than %d kB, the most pysafe's policy reads.",
						MAX_DECIDED_BYTES / 1024));
	/* And its depth bound, from the server's own tree (depth.c). */
	if (pysafe_statement_depth(pstmt->utilityStmt, PYSAFE_MAX_TREE_DEPTH) == PYSAFE_DEPTH_TOO_DEEP)
		refuse(tag, "too_deep",
			   psprintf("cannot execute %s in a read-only session: pysafe could not verify it", tag),
			   PYSAFE_TOO_DEEP_DETAIL);
	reading = pysafe_server_reading(pstmt->utilityStmt);
	question = pysafe_verdict_question(current_policy_flags(), tag, reading, statement,
									   &question_length);
	if (pysafe_verdict_remembered(question, question_length))
		return false;			/* allowed before, from this very question */
	generation = pysafe_verdict_generation();
	PG_TRY();
	{
		verdict = call_policy_function(funcoid, statement, tag, reading);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller_context);
		edata = CopyErrorData();

		FlushErrorState();

		/*
		 * A cancel or statement_timeout that stopped the policy is reported
		 * as itself, without PL/Python's prefix and traceback; the statement
		 * does not run either way.
		 */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		{
			edata->message = pstrdup(without_python_prefix(edata->message));
			edata->context = without_python_context(edata->context);
			ReThrowError(edata);
		}
		record_refusal(tag, "policy_failed", without_python_prefix(edata->message));
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute %s in a read-only session: pysafe policy failed", tag),
				 errdetail("The policy raised: %s", without_python_prefix(edata->message)),
				 errhint("A superuser should check the server-side pysafe files, for example with \"python -m pysafe install\".")));
	}
	PG_END_TRY();

	/*
	 * The reply: NULL to allow; "+temporary" to allow a write to temporary
	 * tables, which the shim confirms itself; "rule\nmessage[\ndetail]" to
	 * refuse.  Anything else is refused too.
	 */
	if (verdict == NULL)
		return false;
	rule = text_to_cstring(verdict);
	if (strcmp(rule, POLICY_PURE_ALLOW) == 0)
	{
		pysafe_remember_verdict(question, question_length, generation);
		return false;
	}
	if (strcmp(rule, POLICY_TEMPORARY_WRITE) == 0)
	{
		if (temporary_write_confirmed(pstmt->utilityStmt))
			return true;
		refuse(tag, "temporary_unconfirmed",
			   psprintf("cannot execute %s in a read-only session", tag),
			   "The policy allowed it as a write to temporary tables, but the server's statement is not one (or pysafe.allow_temp_objects is off).");
	}
	message = strchr(rule, '\n');
	if (message == NULL || message == rule || message[1] == '\0')
		refuse(tag, "policy_malformed",
			   psprintf("cannot execute %s in a read-only session: pysafe policy gave a malformed reply", tag),
			   psprintf("The reply was: %.200s", rule));
	*message++ = '\0';
	detail = strchr(message, '\n');
	if (detail != NULL)
		*detail++ = '\0';
	refuse(tag, rule, message, detail);
	return false;				/* not reached */
}

/* Run the next ProcessUtility (a previous hook's or the standard one). */
static void
call_next_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * Run a statement the policy allowed as a write to temporary tables only
 * (CREATE TEMP TABLE [AS], DROP or TRUNCATE of temporary tables), with
 * read-only lifted so PostgreSQL's command-level check lets it pass.  Any
 * query it runs goes through ExecutorStart, which forces read-only again and
 * checks the plan, so nothing else is written meanwhile (event triggers
 * included).  The sub-commands PostgreSQL generates for the statement (the
 * sequence of an identity column, the index of a primary key) belong to the
 * new temporary table and run the same way, unchecked.
 */
static void
run_temporary_write(PlannedStmt *pstmt, const char *queryString,
					bool readOnlyTree, ProcessUtilityContext context,
					ParamListInfo params, QueryEnvironment *queryEnv,
					DestReceiver *dest, QueryCompletion *qc)
{
	bool		saved_read_only = XactReadOnly;
	NodeTag		saved_running = temporary_write_running;

	XactReadOnly = false;
	temporary_write_running = nodeTag(pstmt->utilityStmt);
	PG_TRY();
	{
		call_next_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		XactReadOnly = saved_read_only;
		temporary_write_running = saved_running;
	}
	PG_END_TRY();
}

/*
 * Run a plain EXPLAIN (no ANALYZE) in the planning state of explain.c: it
 * plans and starts a plan, and calls nothing volatile meanwhile.
 */
static void
run_plain_explain(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context,
				  ParamListInfo params, QueryEnvironment *queryEnv,
				  DestReceiver *dest, QueryCompletion *qc)
{
	PysafeExplainState saved = pysafe_explain_set(PYSAFE_EXPLAIN_PLANNING);

	PG_TRY();
	{
		call_next_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		pysafe_explain_set(saved);
	}
	PG_END_TRY();
}

/* ProcessUtility hook: force read-only, then fast path or Python policy. */
static void
pysafe_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	bool		temporary_write = false;

	pysafe_notice_transitions(true);
	guard_locked_identity();
	warn_unknown_listed_roles();

	/*
	 * Outside a valid transaction (COMMIT/ROLLBACK of a failed one) only
	 * transaction control can run; nothing can be checked or written.
	 */
	if (temporary_write_running != T_Invalid && context == PROCESS_UTILITY_SUBCOMMAND)
		temporary_write = true; /* part of the statement the policy allowed */
	else if (IsTransactionState() && checks_apply())
	{
		force_read_only();
		if (!utility_fast_path_allows(pstmt->utilityStmt))
			temporary_write = veto_by_python_policy(pstmt, queryString);
	}

	if (temporary_write)
		run_temporary_write(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else if (pysafe_is_plain_explain(pstmt->utilityStmt))
		run_plain_explain(pstmt, queryString, readOnlyTree, context,
						  params, queryEnv, dest, qc);
	else
		call_next_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);

	/*
	 * RESET ALL, DISCARD ALL (a pooler's reset) and RESET of the read-only
	 * settings put the login's read-only defaults back to off without a
	 * check hook; a restricted login gets them again at once.
	 */
	if (IsTransactionState() && !IsParallelWorker() && session_is_restricted())
		keep_login_defaults();
}

/* ---------------------------------------------------------------------
 * Replication connections
 * ---------------------------------------------------------------------
 */

/*
 * ClientAuthentication_hook, for every connection that authenticated.
 *
 * A restricted login starts with default_transaction_read_only on, set
 * here, inside the backend's start-up transaction: every PostgreSQL
 * version then reports it to the client before the first statement (libpq
 * target_session_attrs=read-only), with no login trigger or preloaded
 * library, and per-role or startup values cannot lower it.
 *
 * A restricted role may not open a replication connection.  Walsender
 * commands (CREATE_REPLICATION_SLOT, BASE_BACKUP, START_REPLICATION ...)
 * pass none of the other hooks, and each changes server state, so the
 * connection itself is refused.  Should the role catalogs not be readable
 * here, a replication connection is refused (fail closed); superusers are
 * settled before any catalog lookup.
 */
static void
pysafe_ClientAuthentication(Port *port, int status)
{
	Oid			role;
	bool		restricted;
	char	   *message;

	if (prev_ClientAuthentication)
		prev_ClientAuthentication(port, status);
	if (status != STATUS_OK)
		return;
	if (!IsTransactionState())
	{
		if (am_walsender)
			ereport(FATAL,
					(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
					 errmsg("pysafe cannot check replication connections here")));
		return;
	}
	role = get_role_oid(port->user_name, true);
	/* The login will be the session user: its first statement finds the answer cached. */
	restricted = remember_restriction(role, OidIsValid(role) && compute_session_restricted(role));
	if (restricted && !am_walsender)
	{
		if (pysafe_force_read_only)
			SetConfigOption("default_transaction_read_only", "on", PGC_SUSET, PGC_S_SESSION);
		return;
	}
	if (!restricted)
		return;
	message = psprintf("role \"%s\" is restricted by pysafe and cannot open replication connections",
					   port->user_name);
	/*
	 * No session user, database or statement yet: the login's role, the
	 * database a logical replication connection names (none for physical
	 * replication), and their names from the start-up packet.
	 */
	pysafe_count_refusal(am_db_walsender ? get_database_oid(port->database_name, true) : InvalidOid,
						 role, "replication");
	write_refusal_line(port->user_name, port->user_name, port->database_name,
					   "REPLICATION", "replication", message, "");
	ereport(FATAL,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("%s", message),
			 errdetail("Replication commands create and drop slots, stream WAL and write backups."),
			 errhint("Use an unrestricted role for replication.")));
}

/* ---------------------------------------------------------------------
 * SQL-callable functions
 * ---------------------------------------------------------------------
 */

/* pysafe.session_is_restricted(): is the calling session restricted? */
Datum
pysafe_session_is_restricted(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(session_is_restricted());
}

/* The statement as parse analysis hands it to ProcessUtility. */
static Node *
analyzed_statement(RawStmt *raw, const char *sql)
{
#if PG_VERSION_NUM >= 150000
	Query	   *query = parse_analyze_fixedparams(raw, sql, NULL, 0, NULL);
#else
	Query	   *query = parse_analyze(raw, sql, NULL, 0, NULL);
#endif

	return query->utilityStmt;
}

/* pysafe_internal.fast_path_allows(sql): would the C fast path pass every statement? */
Datum
pysafe_fast_path_allows(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *parsed = raw_parser(sql, RAW_PARSE_DEFAULT);
	ListCell   *lc;

	if (parsed == NIL)
		PG_RETURN_BOOL(false);
	foreach(lc, parsed)
	{
		RawStmt    *raw = (RawStmt *) lfirst(lc);
		Node	   *stmt = raw->stmt;

		/* EXPLAIN reaches ProcessUtility with its statement analyzed; so here. */
		if (IsA(stmt, ExplainStmt))
			stmt = analyzed_statement(raw, sql);
		if (!utility_fast_path_allows(stmt))
			PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}

/*
 * Session start: restricted sessions begin with default_transaction_read_only
 * on.  Called by pysafe_session.so (session_preload_libraries, before
 * PostgreSQL 17) inside a transaction, and by the login trigger.  Superusers
 * are never restricted (the first thing session_is_restricted() settles), so
 * nothing here can keep them out.  The per-statement checks do not depend on
 * this.
 *
 * When the shim was not preloaded (between install and the restart), this
 * call is what loaded it, after the startup options were applied.  The
 * pysafe.* settings were placeholders then, so a client's "-c pysafe.roles=x"
 * took the place of the configuration file's value, and defining the
 * setting refused the client's value and left the built-in default: the
 * session would run unrestricted.  So read the configuration files again
 * first, as a reload does, and the DBA's values are the ones in force.
 */
void
pysafe_session_start(void)
{
	if (!loaded_at_server_start)
	{
		ProcessConfigFile(PGC_SIGHUP);
		pysafe_forget_watch();	/* what hooks saw before the DBA's values counts for nothing */
	}
	if (session_is_restricted())
		keep_login_defaults();
}

/* pysafe_internal.login_trigger(): the function of the "ON login" event trigger (17+). */
Datum
pysafe_login_trigger(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "pysafe_internal.login_trigger() can only run as an event trigger");
	pysafe_session_start();
	PG_RETURN_VOID();
}

/* pysafe_internal.shim_settings_flags(): the flags the shim passes to the policy. */
Datum
pysafe_shim_settings_flags(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(current_policy_flags());
}

/* ---------------------------------------------------------------------
 * Module load
 * ---------------------------------------------------------------------
 */

/* Define one superuser-only, cluster-wide boolean setting. */
static void
define_bool_setting(const char *name, const char *description, bool *variable,
					bool default_value, GucBoolCheckHook check_hook)
{
	DefineCustomBoolVariable(name, description, NULL, variable, default_value,
							 PGC_SUSET, 0, check_hook, NULL, NULL);
}

void
_PG_init(void)
{
	loaded_at_server_start = process_shared_preload_libraries_in_progress;
	DefineCustomStringVariable("pysafe.shim_build",
							   "Which build of the shim this server loaded.",
							   "Set at build time; install compares it with the build it placed.",
							   &pysafe_shim_build, PYSAFE_SHIM_BUILD,
							   PGC_INTERNAL, GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("pysafe.roles",
							   "Roles whose sessions are read-only, with their members.",
							   "A comma-separated list of role names; superusers are never restricted.",
							   &pysafe_roles, "",
							   PGC_SUSET, GUC_LIST_INPUT,
							   check_roles, assign_roles, NULL);
	define_bool_setting("pysafe.block_dml",
						"Refuse INSERT, UPDATE, DELETE, MERGE and COPY FROM in restricted sessions.",
						&pysafe_block_dml, true, check_block_dml);
	define_bool_setting("pysafe.block_ddl",
						"Refuse utility statements outside pysafe's allow-list in restricted sessions.",
						&pysafe_block_ddl, true, check_block_ddl);
	define_bool_setting("pysafe.block_c_functions",
						"Refuse C-language functions that may write and uncleared untrusted-language functions in restricted sessions.",
						&pysafe_block_c_functions, true, check_block_c_functions);
	define_bool_setting("pysafe.block_all_c_functions",
						"With block_c_functions, refuse every C-language function, whatever its volatility.",
						&pysafe_block_all_c_functions, false, check_block_all_c_functions);
	define_bool_setting("pysafe.force_read_only",
						"Force every transaction of a restricted session to be read-only.",
						&pysafe_force_read_only, true, check_force_read_only);
	define_bool_setting("pysafe.lock_session_authorization",
						"Keep a session that became restricted through SET SESSION AUTHORIZATION from switching back.",
						&pysafe_lock_session_authorization, false, check_lock_session_authorization);
	define_bool_setting("pysafe.log_refusals",
						"Write one structured line to the server log for every refusal.",
						&pysafe_log_refusals, true, check_log_refusals);
	DefineCustomIntVariable("pysafe.log_statement_length",
							"Bytes of the refused statement's text in the refusal log line.",
							"0 leaves the text out.",
							&pysafe_log_statement_length, 200, 0, 1024 * 1024,
							PGC_SUSET, 0, check_log_statement_length, NULL, NULL);
	DefineCustomEnumVariable("pysafe.read_write_requests",
							 "What a restricted session's request for a read-write transaction gets.",
							 "ignore: accepted with a NOTICE, and the session stays read-only; refuse: refused, as SafeSession does.",
							 &pysafe_read_write_requests, READ_WRITE_IGNORE,
							 read_write_request_options,
							 PGC_SUSET, 0, check_read_write_requests, NULL, NULL);
	define_bool_setting("pysafe.allow_temp_objects",
						"Let restricted sessions create, write and drop their own temporary tables.",
						&pysafe_allow_temp_objects, false, check_allow_temp_objects);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("pysafe");
#else
	EmitWarningsOnPlaceholders("pysafe");
#endif

	guard_core_settings();
	pysafe_superuser_settings_init();	/* every superuser-only and log-writing setting */
	pysafe_log_guard_init();
	pysafe_snapshots_init();

	CacheRegisterSyscacheCallback(PROCOID, policy_function_invalidated, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, policy_function_invalidated, (Datum) 0);
	pysafe_verdicts_init();
	pysafe_refusals_init();
	pysafe_functions_init();
	CacheRegisterSyscacheCallback(AUTHOID, restriction_cache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, restriction_cache_callback, (Datum) 0);

	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = pysafe_ExecutorStart;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = pysafe_ProcessUtility;
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = pysafe_needs_fmgr_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = pysafe_fmgr_hook;
	prev_object_access_hook = object_access_hook;
	object_access_hook = pysafe_object_access;
	prev_ClientAuthentication = ClientAuthentication_hook;
	ClientAuthentication_hook = pysafe_ClientAuthentication;
	pysafe_transitions_init();	/* ExecutorRun_hook */
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = pysafe_post_parse_analyze;
}
