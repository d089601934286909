/*-------------------------------------------------------------------------
 *
 * verdicts.c
 *		The backend's memory of the Python policy's pure verdicts.
 *
 * The policy decides a utility statement from what the shim passes it (the
 * statement's text, the server's command tag and reading of its parse tree,
 * the settings as flags) and, for some statements, from catalog facts.  When
 * it allows a statement using no fact but a language's trust, it says so
 * ("+allow"), and the shim remembers the question: the same question then
 * gets the same answer without calling Python.  Clients send the same few
 * statements over and over (BEGIN READ WRITE from a pooled driver, an
 * agent's DO block), so this takes Python off their path after the first.
 *
 * The key is the whole question, compared byte for byte, so a remembered
 * verdict is only ever reused for exactly the statement it judged.  Any
 * change to pg_language (a language's trust) or pg_proc (the policy
 * function itself) forgets everything.  Refusals and verdicts that looked
 * at relations (temporary tables, which depend on search_path) are never
 * remembered.  The memory is a fixed number of slots, each holding one
 * question of bounded size.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "pysafe.h"

#define VERDICT_SLOTS		256
#define MAX_QUESTION_BYTES	4096	/* longer questions are asked each time */

typedef struct RememberedVerdict
{
	char	   *question;		/* NULL for an empty slot */
	Size		length;
} RememberedVerdict;

static RememberedVerdict slots[VERDICT_SLOTS];
static MemoryContext verdict_context = NULL;

/* Counts forgettings, so a verdict given across one is not remembered. */
static uint64 verdict_generation = 0;

/* Forget every remembered verdict. */
void
pysafe_forget_verdicts(void)
{
	if (verdict_context != NULL)
		MemoryContextReset(verdict_context);
	memset(slots, 0, sizeof(slots));
	verdict_generation++;
}

/* The current generation; pass it to pysafe_remember_verdict(). */
uint64
pysafe_verdict_generation(void)
{
	return verdict_generation;
}

/* Syscache callback: a language or function changed. */
static void
verdicts_invalidated(Datum arg, int cacheid, uint32 hashvalue)
{
	pysafe_forget_verdicts();
}

/* Register the invalidation callbacks; from _PG_init. */
void
pysafe_verdicts_init(void)
{
	CacheRegisterSyscacheCallback(LANGOID, verdicts_invalidated, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, verdicts_invalidated, (Datum) 0);
}

/* The slot a question belongs in. */
static RememberedVerdict *
slot_for(const char *question, Size length)
{
	return &slots[hash_bytes((const unsigned char *) question, (int) length) % VERDICT_SLOTS];
}

/*
 * The whole question the policy answers, unambiguous (lengths before texts),
 * or NULL when it is too long to remember: then it is not even built.
 */
char *
pysafe_verdict_question(int flags, const char *command_tag, const char *reading,
						const char *statement, Size *length)
{
	Size		tag_length = strlen(command_tag);
	Size		reading_length = strlen(reading);
	char	   *question;

	if (tag_length + reading_length + strlen(statement) > MAX_QUESTION_BYTES)
		return NULL;
	question = psprintf("%d|%zu:%s|%zu:%s|%s", flags, tag_length, command_tag,
						reading_length, reading, statement);
	*length = strlen(question);
	return question;
}

/* Has the policy allowed exactly this question, purely, since the last change? */
bool
pysafe_verdict_remembered(const char *question, Size length)
{
	RememberedVerdict *slot;

	if (question == NULL || length > MAX_QUESTION_BYTES)
		return false;
	slot = slot_for(question, length);
	return slot->question != NULL && slot->length == length &&
		memcmp(slot->question, question, length) == 0;
}

/*
 * Remember that the policy allowed this question using no relation facts,
 * unless something was forgotten since the policy was asked (generation):
 * the verdict may rest on a language's trust from before the change.
 */
void
pysafe_remember_verdict(const char *question, Size length, uint64 generation)
{
	RememberedVerdict *slot;

	if (question == NULL || length > MAX_QUESTION_BYTES || generation != verdict_generation)
		return;
	if (verdict_context == NULL)
		verdict_context = AllocSetContextCreate(TopMemoryContext, "pysafe verdicts",
												ALLOCSET_DEFAULT_SIZES);
	slot = slot_for(question, length);
	if (slot->question != NULL)
		pfree(slot->question);
	slot->question = MemoryContextAlloc(verdict_context, length);
	memcpy(slot->question, question, length);
	slot->length = length;
}

PG_FUNCTION_INFO_V1(pysafe_remembered_verdicts);

/* pysafe.remembered_verdicts(): how many verdicts this backend remembers. */
Datum
pysafe_remembered_verdicts(PG_FUNCTION_ARGS)
{
	int			count = 0;
	int			i;

	for (i = 0; i < VERDICT_SLOTS; i++)
		if (slots[i].question != NULL)
			count++;
	PG_RETURN_INT32(count);
}
