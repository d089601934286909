"""Refusal wording, following SafeSession where it has a message for the refusal.

COMMAND names the statement by PostgreSQL's command tag, as SafeSession does
for DML and for every utility statement outside its allow-list
(``cannot execute CREATE TABLE in a read-only session``); the DETAIL says why.
"""

COMMAND = "cannot execute {command} in a read-only session"
DML = COMMAND
MODIFYING_CTE = "cannot execute a data-modifying WITH clause in a read-only session"
ROW_LOCKS = "cannot execute SELECT FOR UPDATE/SHARE in a read-only session"
PRIVILEGES = "cannot execute privilege changes in a read-only session"
VACUUM = "cannot execute VACUUM/ANALYZE in a read-only session"
LOCKS = "cannot acquire exclusive locks in a read-only session"
COPY_FROM = "cannot execute COPY FROM in a read-only session"
COPY_FROM_PROGRAM = "cannot execute COPY FROM PROGRAM in a read-only session"
COPY_TO_PROGRAM = "cannot execute COPY TO PROGRAM in a read-only session"
COPY_TO_FILE = "cannot execute COPY TO a server file in a read-only session"
TWO_PHASE = "cannot execute two-phase commit statements in a read-only session"
READ_ONLY_SETTINGS = "cannot modify read-only transaction settings in a read-only session"
PYSAFE_SETTINGS = "cannot change pysafe settings in a read-only session"
EXPLAIN_ANALYZE_WRITE = (
    "cannot execute EXPLAIN ANALYZE of a writing statement in a read-only session"
)
UNTRUSTED_DO = "cannot execute a DO block in an untrusted language in a read-only session"
# The shim's own refusal of a table made at ExecutorStart (installer/pysafe.c), named
# by its tag as COMMAND names every other statement.
CREATE_TABLE_AS = COMMAND.format(command="CREATE TABLE AS")
UNPARSABLE = "cannot execute {command} in a read-only session: pysafe could not verify it"
SESSION_AUTHORIZATION = "cannot change session authorization in a read-only session"
FUNCTIONS = "cannot execute functions that may have side effects in a read-only session"
