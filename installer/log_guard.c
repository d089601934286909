/*-------------------------------------------------------------------------
 *
 * log_guard.c
 *		What reaches the server log: refusal lines nobody can forge, and a
 *		bound on what a restricted session writes there.
 *
 * pysafe's refusal lines are the only messages that hold the marker
 * "pysafe refusal: ", once, at their start (a statement quoted in the line's
 * object has its own markers rewritten).  pysafe_log_refusal_line() notes the one message it
 * is about to write; emit_log_hook, in every process, rewrites the marker
 * wherever else it appears (message, detail, hint, context, internal
 * query: RAISE LOG, error text quoting a statement, log_statement lines)
 * and hides the STATEMENT echo of a statement whose text holds it.
 *
 * For a restricted session the hook also bounds what its statements write
 * below ERROR (RAISE LOG/WARNING, plpy.log, warnings in a loop): at most
 * LOG_LINES_PER_STATEMENT messages per top-level statement (one client
 * message), the last of which says that the rest are dropped, without
 * the STATEMENT echo when the statement is longer than LOG_FIELD_BYTES; and
 * every message field it logs is cut to LOG_FIELD_BYTES (the client gets
 * the same message).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

#include "pysafe.h"

#define REFUSAL_MARKER		"pysafe refusal: "
#define FORGED_MARKER		"pysafe refusal (not written by pysafe): "
#define LOG_LINES_PER_STATEMENT	32	/* docs/operations.md has the same */
#define LOG_FIELD_BYTES		2048	/* docs/operations.md has the same */

static emit_log_hook_type prev_emit_log_hook = NULL;

/* The message of the refusal line pysafe is writing now, or NULL. */
static const char *own_line = NULL;

/* The top-level statement (its start time) whose messages below ERROR are counted, and how many. */
static TimestampTz counted_statement = 0;
static int	counted_lines = 0;

/* Does the text hold the refusal marker? */
static bool
holds_marker(const char *text)
{
	return text != NULL && strstr(text, REFUSAL_MARKER) != NULL;
}

/* The text with every refusal marker rewritten, so that it no longer reads as a refusal line. */
static char *
without_marker(const char *text)
{
	StringInfoData out;
	const char *at;

	initStringInfo(&out);
	while ((at = strstr(text, REFUSAL_MARKER)) != NULL)
	{
		appendBinaryStringInfo(&out, text, at - text);
		appendStringInfoString(&out, FORGED_MARKER);
		text = at + strlen(REFUSAL_MARKER);
	}
	appendStringInfoString(&out, text);
	return out.data;
}

/* Rewrite the marker in one message field, if it holds one. */
static void
neutralize_field(char **field)
{
	if (holds_marker(*field))
		*field = without_marker(*field);
}

/* Cut one message field to LOG_FIELD_BYTES, on a character boundary. */
static void
cut_field(char **field)
{
	int			length;

	if (*field == NULL || strlen(*field) <= LOG_FIELD_BYTES)
		return;
	length = pg_mbcliplen(*field, strlen(*field), LOG_FIELD_BYTES);
	*field = psprintf("%.*s...", length, *field);
}

/* Bound what a restricted session's statement writes to the server log. */
static void
bound_restricted_message(ErrorData *edata)
{
	TimestampTz statement = GetCurrentStatementStartTimestamp();

	cut_field(&edata->message);
	cut_field(&edata->detail);
	cut_field(&edata->detail_log);
	cut_field(&edata->hint);
	cut_field(&edata->context);
	cut_field(&edata->internalquery);
	/*
	 * The server echoes the statement after an ERROR, and after every
	 * RAISE LOG (LOG ranks above ERROR for the server log): a long one would
	 * be written again and again.  The refusal line keeps its first
	 * pysafe.log_statement_length bytes.
	 */
	if (debug_query_string != NULL && strlen(debug_query_string) > LOG_FIELD_BYTES)
		edata->hide_stmt = true;
	if (edata->elevel >= ERROR)
		return;
	if (statement != counted_statement)
	{
		counted_statement = statement;
		counted_lines = 0;
	}
	counted_lines++;
	if (counted_lines < LOG_LINES_PER_STATEMENT)
		return;
	if (counted_lines == LOG_LINES_PER_STATEMENT)
	{
		/* detail_log reaches the server log only: the client's message is unchanged. */
		edata->detail_log = psprintf("pysafe: this statement of a restricted session wrote %d messages below ERROR to the server log; the rest are not written.",
									 LOG_LINES_PER_STATEMENT);
		return;
	}
	edata->output_to_server = false;
}

/*
 * emit_log_hook, for every message that goes to the server log.  Called
 * with the message's own memory context current.
 */
static void
pysafe_emit_log(ErrorData *edata)
{
	bool		own = own_line != NULL && edata->elevel == LOG &&
		edata->message != NULL && strcmp(edata->message, own_line) == 0;

	if (own)
	{
		own_line = NULL;		/* one message each */
		/* A parser's error callback may have given it the position of a statement it does not show. */
		edata->cursorpos = 0;
		edata->internalpos = 0;
	}
	else
	{
		neutralize_field(&edata->message);
		neutralize_field(&edata->detail);
		neutralize_field(&edata->detail_log);
		neutralize_field(&edata->hint);
		neutralize_field(&edata->context);
		neutralize_field(&edata->internalquery);
		if (holds_marker(debug_query_string))
			edata->hide_stmt = true;
		if (pysafe_session_restricted_cached())
			bound_restricted_message(edata);
	}
	if (edata->output_to_server && prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Write a refusal line: the marker and the JSON object, at LOG, without the
 * statement or context (the object holds the statement).  The one message
 * emit_log_hook lets begin with the marker.
 */
void
pysafe_log_refusal_line(const char *object)
{
	/* A statement quoted in the object may hold the marker too; only the first one stays. */
	char	   *message = psprintf(REFUSAL_MARKER "%s",
								   holds_marker(object) ? without_marker(object) : object);

	own_line = message;
	PG_TRY();
	{
		ereport(LOG,
				(errmsg("%s", message),
				 errhidestmt(true), errhidecontext(true)));
	}
	PG_FINALLY();
	{
		own_line = NULL;
	}
	PG_END_TRY();
	pfree(message);
}

/* Install the emit_log_hook (in the postmaster; every process inherits it). */
void
pysafe_log_guard_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = pysafe_emit_log;
}
