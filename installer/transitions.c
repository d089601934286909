/*-------------------------------------------------------------------------
 *
 * transitions.c
 *		A session that becomes restricted while it is open is ended.
 *
 * A restriction made while a session is open (pysafe.restrict(), a reload
 * of pysafe.roles, a GRANT of a restricted role, ALTER ROLE ... NOSUPERUSER,
 * DROP ROLE) would otherwise reach only what the session starts afterwards.
 * Work already under way was set up unchecked: an open transaction and the
 * advisory locks it holds, prepared statements, cursors and WITH HOLD
 * cursors, PL/pgSQL simple expressions whose functions were bound once.
 * Checking each of those again is a list that never ends, so the session
 * is ended instead (FATAL, 25006): the abort rolls back the open
 * transaction, and ending the backend releases session locks, cursors and
 * prepared statements.  The client reconnects and is restricted from its
 * first statement.
 *
 * The check runs at the top of every pysafe hook while the session is
 * watched: its session user was unrestricted at the last hook call.  It
 * accepts invalidation messages there (a restriction made by another
 * session is seen now, not at the next lock), and in the statement-level
 * hooks it applies a pending reload of the configuration files, which
 * PostgreSQL would apply only between client messages.  When nothing has
 * changed that costs a few comparisons and one read of the shared
 * invalidation queue's "has messages" flag.
 *
 * SET SESSION AUTHORIZATION into a restricted role is an identity switch,
 * not a transition: applications do it on purpose.  For it, the ExecutorRun
 * hook refuses to run a plan started while the session was unrestricted
 * (an earlier cursor), since nothing in it was checked.
 *
 * The login's own answer (pysafe_ClientAuthentication) sets no watch: the
 * first hook call does, so a session is never ended for what it was when
 * it logged in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "pysafe.h"

/*
 * The session user the last hook call found unrestricted, with what it was
 * then; InvalidOid when there is none.  It is kept while the session runs
 * as another, restricted, identity: should the session come back to this
 * one and find it restricted, it became restricted while open.
 */
typedef struct WatchedRole
{
	Oid			role;			/* InvalidOid: none */
	bool		superuser;		/* was it a superuser then? */
	NameData	name;			/* its name then, for the message */
} WatchedRole;

static WatchedRole watched_user = {InvalidOid};

/*
 * The login (authenticated user) while the session runs as another identity
 * (SET SESSION AUTHORIZATION), found unrestricted; and the restriction
 * generation it was last judged in.  A login restricted meanwhile ends the
 * session too: switching back would give it everything set up before.
 */
static WatchedRole watched_login = {InvalidOid};
static uint64 watched_login_generation = 0;

/* Set while this file reloads the configuration: hooks reached meanwhile do nothing. */
static bool reloading = false;

static ExecutorRun_hook_type prev_ExecutorRun = NULL;

/*
 * The mark ExecutorStart leaves in the executor state of a plan it started
 * (and checked) while the session was restricted: a bit of es_top_eflags
 * above every EXEC_FLAG_* PostgreSQL defines, which the executor reads only
 * by its own bits.  It goes with the state, at ExecutorEnd or at abort,
 * and costs no allocation.
 */
#define PYSAFE_EFLAG_CHECKED	(1 << 30)

/*
 * The role the last session_authorization check hook call asked for, and
 * whether it is restricted; read (and cleared) by the assign hook that
 * follows.  Looked up in the check hook because an assign hook must not
 * fail.
 */
static Oid	requested_identity = InvalidOid;
static bool requested_identity_restricted = false;

/* Watch a role found unrestricted, with what a transition's DETAIL needs. */
static void
watch(WatchedRole *watched, Oid role)
{
	const char *name = GetUserNameFromId(role, true);

	watched->superuser = superuser_arg(role);
	namestrcpy(&watched->name, name ? name : "");
	watched->role = role;
}

/* Forget the watched user: the session starts again (a late-loaded shim's re-read settings). */
void
pysafe_forget_watch(void)
{
	watched_user.role = InvalidOid;
	watched_login.role = InvalidOid;
}

/* Why the watched user is restricted now, for the DETAIL. */
static const char *
transition_reason(const WatchedRole *watched)
{
	Oid			user = watched->role;
	bool		restricted_group;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(user)))
		return "Its role was dropped; pysafe treats a session whose role no longer exists as restricted.";
	restricted_group = pysafe_role_is_or_joins(user, PYSAFE_RESTRICTED_GROUP);
	if (watched->superuser && !superuser_arg(user))
		return restricted_group ?
			"It is no longer a superuser, and it was restricted with pysafe.restrict(), directly or through membership." :
			"It is no longer a superuser, and it is listed, directly or through membership, in pysafe.roles.";
	return restricted_group ?
		"It was restricted with pysafe.restrict(), directly or through membership." :
		"It is now listed, directly or through membership, in pysafe.roles.";
}

/* End the session whose watched user became restricted; counted and logged as a refusal. */
static void
end_restricted_session(const WatchedRole *watched)
{
	const char *reason = transition_reason(watched);
	char	   *message;

	message = psprintf("terminating connection: role \"%s\" became restricted by pysafe while this session was open",
					   NameStr(watched->name));
	pysafe_record_refusal("SESSION", "became_restricted", message);
	ereport(FATAL,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("%s", message),
			 errdetail("%s Its open transaction is rolled back, and its cursors, prepared statements and locks are released.",
					   reason),
			 errhint("Reconnect: the new session is read-only from its first statement.")));
}

/*
 * Apply a reload of the configuration files now, as autovacuum does inside
 * a transaction: the values of files are not transactional, and a change
 * to pysafe.roles must not wait for the next client message.
 */
static void
reload_now(void)
{
	ConfigReloadPending = false;
	reloading = true;
	PG_TRY();
	{
		ProcessConfigFile(PGC_SIGHUP);
	}
	PG_FINALLY();
	{
		reloading = false;
	}
	PG_END_TRY();
}

/*
 * While the session runs as another identity: end it if its login was
 * unrestricted when last judged and is restricted now.  Judged again only
 * when roles, memberships or pysafe.roles changed since.  Invalidation
 * messages are accepted for it only before a commit (at_commit): in between
 * they arrive with the next lock a statement takes, and this path runs at
 * every hook of every switched session.
 */
static void
notice_login_transition(Oid login, bool at_commit)
{
	if (watched_login.role != login)
	{
		if (!pysafe_role_restricted(login))
		{
			watch(&watched_login, login);
			watched_login_generation = pysafe_restriction_generation();
		}
		return;
	}
	if (at_commit)
	{
		if (ConfigReloadPending)
			reload_now();
		AcceptInvalidationMessages();
	}
	if (pysafe_restriction_generation() == watched_login_generation)
		return;
	watched_login_generation = pysafe_restriction_generation();
	if (pysafe_role_restricted(login))
		end_restricted_session(&watched_login);
}

/*
 * At the top of every hook: end the session if its session user was
 * unrestricted at the last hook call and is restricted now.  may_reload in
 * the statement-level hooks (ExecutorStart, ExecutorRun, ProcessUtility),
 * never inside fmgr or object access, which can run in the middle of
 * setting a value.  Parallel workers leave it to their leader.
 */
static void notice_transitions(bool may_reload, bool at_commit);

void
pysafe_notice_transitions(bool may_reload)
{
	notice_transitions(may_reload, false);
}

/* pysafe_notice_transitions(), and before a commit (at_commit) the login's check in full. */
static void
notice_transitions(bool may_reload, bool at_commit)
{
	Oid			user;
	Oid			login;

	if (reloading || !IsTransactionState() || IsParallelWorker())
		return;
	user = GetSessionUserId();
	if (pysafe_session_restricted_still())
		;						/* restricted, and nothing changed since: nothing to become */
	else if (user != watched_user.role)
	{
		/* A new identity (the first hook call, SET SESSION AUTHORIZATION). */
		if (OidIsValid(user) && !pysafe_restricted_now())
			watch(&watched_user, user);
	}
	else
	{
		if (may_reload && ConfigReloadPending)
			reload_now();
		AcceptInvalidationMessages();
		if (pysafe_restricted_now())
			end_restricted_session(&watched_user);
	}
	login = GetAuthenticatedUserId();
	if (login != user && OidIsValid(login))
		notice_login_transition(login, at_commit);
}

/* ExecutorStart ran pysafe's checks on this plan (the session was restricted). */
void
pysafe_note_checked_plan(QueryDesc *queryDesc)
{
	if (queryDesc->estate != NULL)
		queryDesc->estate->es_top_eflags |= PYSAFE_EFLAG_CHECKED;
}

/* Did ExecutorStart check this plan? */
static bool
plan_was_checked(QueryDesc *queryDesc)
{
	return queryDesc->estate != NULL &&
		(queryDesc->estate->es_top_eflags & PYSAFE_EFLAG_CHECKED) != 0;
}

/*
 * ExecutorRun hook.  FETCH, the protocol's Execute of an open portal and a
 * WITH HOLD cursor's persisting at COMMIT run a plan started earlier, and
 * pass no other hook first.  A restricted session runs only plans its
 * restriction checked: one started before SET SESSION AUTHORIZATION
 * switched into a restricted role is refused (its functions were bound
 * unchecked).
 */
#if PG_VERSION_NUM >= 180000
static void
pysafe_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count)
#else
static void
pysafe_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				   bool execute_once)
#endif
{
	/*
	 * A plan checked at its start ran restricted then, and a restricted
	 * session only ever becomes less so: nothing more to do (the common
	 * case of a restricted session, kept cheap).
	 */
	if (!plan_was_checked(queryDesc))
	{
		pysafe_notice_transitions(true);
		if (pysafe_checks_apply())
			pysafe_refuse(GetCommandTagName(CreateCommandTag((Node *) queryDesc->plannedstmt)),
						  "started_unrestricted",
						  "cannot run a query started before this session became read-only",
						  "The query was started while the session was unrestricted, before SET SESSION AUTHORIZATION switched to a restricted role; pysafe checked nothing in it.");
	}
#if PG_VERSION_NUM >= 180000
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count);
	else
		standard_ExecutorRun(queryDesc, direction, count);
#else
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
#endif
}

/*
 * Transaction callback: before a commit, look once more.  A COPY FROM
 * STDIN's rows, the rest of a long statement, or an extended-protocol
 * Execute before its Sync pass no other hook, and a session that became
 * restricted meanwhile must not commit them.
 */
static void
transitions_at_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
		notice_transitions(true, true);
}

/* Install the ExecutorRun hook and the commit check (from _PG_init). */
void
pysafe_transitions_init(void)
{
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = pysafe_ExecutorRun;
	RegisterXactCallback(transitions_at_commit, NULL);
}

/*
 * session_authorization's check hook, for a change from SET, set_config()
 * or a function's SET clause (or a startup option): is the login
 * restricted?  Then it may not change the session's identity at all, on
 * every version (PostgreSQL 15 and older let a login that was a superuser
 * when it connected switch to anyone, demoted since or not).
 */
bool
pysafe_login_may_not_switch(GucSource source)
{
	Oid			login;

	if (InitializingParallelWorker || !IsTransactionState() ||
		(source != PGC_S_SESSION && source != PGC_S_CLIENT))
		return false;
	login = GetAuthenticatedUserId();
	if (login == GetSessionUserId())
		return pysafe_restricted_now();
	return pysafe_role_restricted(login);
}

/*
 * session_authorization's check hook, once the change passed: note the
 * role asked for and whether it is restricted, for the assign hook.
 */
void
pysafe_note_identity_request(const char *role_name)
{
	Oid			role;

	requested_identity = InvalidOid;
	if (role_name == NULL || InitializingParallelWorker || !IsTransactionState())
		return;
	role = get_role_oid(role_name, true);
	requested_identity_restricted = OidIsValid(role) && pysafe_role_restricted(role);
	requested_identity = role;
}

/*
 * session_authorization's assign hook: has the session just switched into
 * the restricted role its check hook looked up?  Resets and restores reach
 * no check hook, so they never answer yes.
 */
bool
pysafe_switched_into_restricted(void)
{
	bool		switched = OidIsValid(requested_identity) && requested_identity_restricted &&
		GetSessionUserId() == requested_identity;

	requested_identity = InvalidOid;
	return switched;
}
