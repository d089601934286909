"""Rules for utility statements (everything but SELECT and DML), one pglast node at a time."""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import (
    ConstrType,
    DiscardMode,
    ObjectType,
    TransactionStmtKind,
    VariableSetKind,
)

from pysafe.policy import messages
from pysafe.policy.facts import TEMPORARY, CatalogFacts
from pysafe.policy.settings import PolicySettings
from pysafe.policy.verdict import Verdict

# Settings whose change could lift read-only; installer/pysafe.c has the same list.
PROTECTED_SETTINGS = frozenset({"default_transaction_read_only", "transaction_read_only"})
PYSAFE_PREFIX = "pysafe."

# LOCK modes up to ROW SHARE take no lock a writer needs (lockdefs.h numbering).
ROW_SHARE_LOCK = 2

# Statements that read, or only touch session state; allowed under block_ddl.
SESSION_STATEMENTS: dict[type[ast.Node], str] = {
    ast.VariableShowStmt: "show",
    ast.ListenStmt: "listen",
    ast.UnlistenStmt: "listen",
    ast.NotifyStmt: "notify",
    ast.DeclareCursorStmt: "cursor",
    ast.FetchStmt: "cursor",
    ast.ClosePortalStmt: "cursor",
    ast.PrepareStmt: "prepared_statement",
    ast.ExecuteStmt: "prepared_statement",
    ast.DeallocateStmt: "prepared_statement",
    ast.DiscardStmt: "discard",
    ast.CallStmt: "call",
    # When deferred constraints are checked: only writes have any.
    ast.ConstraintsSetStmt: "session_setting",
}

PRIVILEGE_STATEMENTS = (
    ast.GrantStmt,
    ast.GrantRoleStmt,
    ast.AlterDefaultPrivilegesStmt,
    ast.AlterOwnerStmt,
)

TWO_PHASE_KINDS = frozenset(
    {
        TransactionStmtKind.TRANS_STMT_PREPARE,
        TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED,
        TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED,
    }
)

DML_STATEMENTS = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
DML_TAGS: dict[type[ast.Node], str] = {
    ast.InsertStmt: "INSERT",
    ast.UpdateStmt: "UPDATE",
    ast.DeleteStmt: "DELETE",
    ast.MergeStmt: "MERGE",
}

FOREIGN_KEY_DETAIL = (
    "A foreign key locks the table it references in SHARE ROW EXCLUSIVE mode, ahead of "
    "every writer; a temporary table may reference only the session's temporary tables."
)

# Statements PostgreSQL runs in a read-only transaction although they change
# the server's state (ClassifyUtilityCommandAsReadOnly: they leave pg_dump's
# output alone).  Read-only forcing refuses them too, so it holds alone with
# block_ddl off.  COPY to a file or program and two-phase commit are handled
# with COPY and transaction control.
WRITES_PERMITTED_READ_ONLY = (
    ast.VacuumStmt,
    ast.ClusterStmt,
    ast.ReindexStmt,
    ast.CheckPointStmt,
    ast.AlterSystemStmt,
    ast.LoadStmt,
)


def parse_bool(text: str) -> bool | None:
    """PostgreSQL's parse_bool: unique prefixes of true/false/yes/no, on/off, 1/0."""
    value = text.strip().lower()
    if not value:
        return None
    if "true".startswith(value) or "yes".startswith(value) or value in ("on", "1"):
        return True
    if "false".startswith(value) or "no".startswith(value) or value in ("of", "off", "0"):
        return False
    return None


def constant_text(node: object) -> str | None:
    """The text of a constant SET argument, as PostgreSQL flattens it."""
    if isinstance(node, ast.A_Const) and not node.isnull:
        value = node.val
        if isinstance(value, ast.String):
            return value.sval
        if isinstance(value, ast.Integer):
            return str(value.ival)
        if isinstance(value, ast.Boolean):
            return "true" if value.boolval else "false"
    if isinstance(node, ast.String):
        return node.sval
    return None


def requests_read_write(options: tuple[ast.Node, ...] | None) -> bool:
    """Do transaction options (BEGIN, SET TRANSACTION ...) ask for READ WRITE?"""
    for option in options or ():
        if (
            isinstance(option, ast.DefElem)
            and option.defname == "transaction_read_only"
            and parse_bool(constant_text(option.arg) or "") is not True
        ):
            return True
    return False


def read_write_request(settings: PolicySettings, detail: str | None = None) -> Verdict:
    """A request to switch read-only off (BEGIN READ WRITE, SET TRANSACTION READ
    WRITE, SET SESSION CHARACTERISTICS ... READ WRITE, SET ... = off, RESET).

    With pysafe.read_write_requests = ignore the shim's check hooks keep the
    setting on (with a NOTICE) on every path, so the statement may run: pooled
    drivers that reset connections this way keep working.  With refuse, or
    without read-only forcing to keep it on, it is refused.
    """
    if settings.ignore_read_write_requests and settings.force_read_only:
        return Verdict.allow("read_write_ignored")
    return Verdict.refuse("read_only_settings", messages.READ_ONLY_SETTINGS, detail)


SESSION_AUTHORIZATION_LOCKED = Verdict.refuse(
    "session_authorization",
    messages.SESSION_AUTHORIZATION,
    "pysafe.lock_session_authorization keeps a session that became restricted through "
    "SET SESSION AUTHORIZATION from switching back.",
)


def decide_set(stmt: ast.VariableSetStmt, settings: PolicySettings) -> Verdict:
    """SET/RESET: read-only settings may only be set to on; pysafe's not at all."""
    kind = stmt.kind
    if (stmt.name or "").lower() == "session_authorization" and (
        settings.session_authorization_locked
    ):
        return SESSION_AUTHORIZATION_LOCKED
    if kind == VariableSetKind.VAR_RESET_ALL:
        # RESET ALL is harmless: the shim re-forces read-only at every statement.
        return Verdict.allow("session_setting")
    if kind == VariableSetKind.VAR_SET_MULTI:
        if requests_read_write(stmt.args):
            return read_write_request(settings)
        return Verdict.allow("session_setting")
    name = (stmt.name or "").lower()
    if name.startswith(PYSAFE_PREFIX):
        return Verdict.refuse("pysafe_settings", messages.PYSAFE_SETTINGS)
    if name in PROTECTED_SETTINGS:
        args = stmt.args or ()
        sets_on = (
            kind == VariableSetKind.VAR_SET_VALUE
            and len(args) == 1
            and parse_bool(constant_text(args[0]) or "") is True
        )
        # FROM CURRENT keeps the value in force; the shim's check hooks guard it anyway.
        if sets_on or kind == VariableSetKind.VAR_SET_CURRENT:
            return Verdict.allow("session_setting")
        # A value meets the shim's check hook, which keeps the setting on; a
        # reset does not, and the shim sets it on again right after the
        # statement and forces read-only at every hook.
        return read_write_request(settings, f"{name} may only be set to on.")
    return Verdict.allow("session_setting")


def decide_transaction(stmt: ast.TransactionStmt, settings: PolicySettings) -> Verdict:
    """Transaction control passes, except READ WRITE and two-phase commit."""
    if stmt.kind in TWO_PHASE_KINDS and (settings.block_ddl or settings.force_read_only):
        return Verdict.refuse("two_phase_commit", messages.TWO_PHASE)
    if requests_read_write(stmt.options):
        return read_write_request(settings)
    return Verdict.allow("transaction_control")


def select_writes(stmt: ast.SelectStmt) -> bool:
    """Does a SELECT carry a data-modifying WITH clause?"""
    ctes = stmt.withClause.ctes if stmt.withClause is not None else ()
    return any(
        isinstance(cte, ast.CommonTableExpr) and isinstance(cte.ctequery, DML_STATEMENTS)
        for cte in ctes or ()
    )


def explain_analyzes(stmt: ast.ExplainStmt) -> bool:
    """EXPLAIN's ANALYZE as PostgreSQL reads it: the last occurrence wins.

    ANALYSE and a quoted "analyze" reach here as "analyze" too.  A value
    PostgreSQL would reject counts as on; the server refuses that statement
    before it runs anyway.
    """
    analyze = False
    for option in stmt.options or ():
        if isinstance(option, ast.DefElem) and option.defname == "analyze":
            value = constant_text(option.arg) if option.arg is not None else "on"
            analyze = value is None or parse_bool(value) is not False
    return analyze


def written_relations(stmt: ast.Node | None) -> list[ast.RangeVar | None]:
    """The relations a query writes: its target, and those of its data-modifying
    WITH clauses at any depth."""
    written: list[ast.RangeVar | None] = []
    if isinstance(stmt, DML_STATEMENTS):
        written.append(stmt.relation)
    with_clause = getattr(stmt, "withClause", None)
    for cte in (with_clause.ctes if isinstance(with_clause, ast.WithClause) else ()) or ():
        if isinstance(cte, ast.CommonTableExpr):
            written.extend(written_relations(cte.ctequery))
    return written


def query_write_verdict(
    stmt: ast.Node | None, settings: PolicySettings, facts: CatalogFacts
) -> Verdict | None:
    """The refusal of a query that writes a relation the executor check (block_dml;
    temporary tables under allow_temp_objects) or read-only forcing (permanent
    relations) refuses; None when it writes none.

    Parse analysis locks a write's target in ROW EXCLUSIVE mode before anything
    else runs (PREPARE, plain EXPLAIN, the protocol's Parse message), so the shim
    refuses such a query right after parse analysis (installer/parse_locks.c has
    the same rule), with the executor check's words.
    """
    for relation in written_relations(stmt):
        temporary = relation_is_temporary(relation, facts)
        if (settings.block_dml and not (settings.allow_temp_objects and temporary)) or (
            settings.force_read_only and not temporary
        ):
            if isinstance(stmt, DML_STATEMENTS):
                return Verdict.refuse("dml", messages.DML.format(command=DML_TAGS[type(stmt)]))
            return Verdict.refuse("modifying_cte", messages.MODIFYING_CTE)
    return None


def decide_explain(stmt: ast.ExplainStmt, settings: PolicySettings, facts: CatalogFacts) -> Verdict:
    """EXPLAIN of a query the write rules refuse is refused, ANALYZE or not: its
    parse analysis takes the write's locks.  Plain EXPLAIN passes otherwise;
    EXPLAIN ANALYZE must not run a writing statement."""
    query = stmt.query
    inner = query.query if isinstance(query, ast.CreateTableAsStmt) else query
    if (refused := query_write_verdict(inner, settings, facts)) is not None:
        return refused
    if not explain_analyzes(stmt):
        return Verdict.allow("explain")
    writes_data = isinstance(query, DML_STATEMENTS) or (
        isinstance(query, ast.SelectStmt) and select_writes(query)
    )
    creates_table = isinstance(query, ast.CreateTableAsStmt) or (
        isinstance(query, ast.SelectStmt) and query.intoClause is not None
    )
    detail = "EXPLAIN ANALYZE runs the statement it explains."
    if writes_data and settings.block_dml:
        # Named as the statement itself is refused: its command, or its WITH clause.
        if isinstance(query, DML_STATEMENTS):
            wording = messages.COMMAND.format(command=DML_TAGS[type(query)])
        else:
            wording = messages.MODIFYING_CTE
        return Verdict.refuse("explain_analyze_write", wording, detail)
    # A table made under EXPLAIN ANALYZE gets past PostgreSQL's read-only check; the
    # shim refuses it at ExecutorStart under the same settings, as CREATE TABLE AS.
    if creates_table and (settings.block_ddl or settings.block_dml or settings.force_read_only):
        return Verdict.refuse("explain_analyze_write", messages.EXPLAIN_ANALYZE_WRITE, detail)
    return Verdict.allow("explain")


def decide_copy(stmt: ast.CopyStmt, settings: PolicySettings, facts: CatalogFacts) -> Verdict:
    """COPY TO the client passes; COPY FROM only under block_dml off, and into a
    permanent table only without read-only forcing (PostgreSQL's own check).

    A program (either direction) runs a shell command as the server's operating
    system user, and COPY TO a file writes one: refused whatever the settings,
    since PostgreSQL runs both in a read-only transaction (COPY FROM a program
    into a temporary table too).  COPY FROM a server file only reads it, as the
    role's pg_read_server_files membership allows.
    """
    if stmt.is_program:
        if stmt.is_from:
            return Verdict.refuse("copy_from_program", messages.COPY_FROM_PROGRAM)
        return Verdict.refuse("copy_to_program", messages.COPY_TO_PROGRAM)
    if stmt.is_from:
        if settings.block_dml or (
            settings.force_read_only and not relation_is_temporary(stmt.relation, facts)
        ):
            return Verdict.refuse("copy_from", messages.COPY_FROM)
        return Verdict.allow("copy_from")
    if stmt.filename is not None:
        return Verdict.refuse("copy_to_file", messages.COPY_TO_FILE)
    return Verdict.allow("copy_to")


def do_language(stmt: ast.DoStmt) -> str:
    """The language of a DO block; plpgsql unless named."""
    for arg in stmt.args or ():
        if isinstance(arg, ast.DefElem) and arg.defname == "language":
            return constant_text(arg.arg) or "plpgsql"
    return "plpgsql"


def decide_do(stmt: ast.DoStmt, settings: PolicySettings, facts: CatalogFacts) -> Verdict:
    """DO in a trusted language passes (its statements are checked as they run)."""
    language = do_language(stmt)
    if settings.block_c_functions and facts.language_is_trusted(language) is not True:
        return Verdict.refuse(
            "untrusted_do", messages.UNTRUSTED_DO, f"Language {language} is not trusted."
        )
    return Verdict.allow("do_block")


def decide_ddl_category(stmt: ast.Node, command: str) -> Verdict:
    """Statements under block_ddl that are not on the allow-list."""
    if isinstance(stmt, PRIVILEGE_STATEMENTS):
        return Verdict.refuse("privileges", messages.PRIVILEGES)
    if isinstance(stmt, ast.VacuumStmt):
        return Verdict.refuse("vacuum", messages.VACUUM)
    wording = messages.COMMAND.format(command=command)
    if isinstance(stmt, ast.CreateTableAsStmt):
        return Verdict.refuse(
            "create_table_as", wording, f"{command} creates a relation and writes its rows."
        )
    return Verdict.refuse("utility", wording, f"{command} is not on pysafe's allow-list.")


def decide_write_permitted_read_only(stmt: ast.Node, command: str) -> Verdict:
    """The refusal read-only forcing adds where PostgreSQL's read-only mode stops short."""
    detail = (
        f"PostgreSQL runs {command} in a read-only transaction, but it changes the "
        "server's state; pysafe.force_read_only refuses it."
    )
    if isinstance(stmt, ast.VacuumStmt):
        return Verdict.refuse("vacuum", messages.VACUUM, detail)
    return Verdict.refuse("read_only_exempt", messages.COMMAND.format(command=command), detail)


def quote_name(*parts: str) -> str:
    """A qualified name as to_regclass reads it, each part quoted."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def range_var_name(rel: ast.RangeVar) -> str:
    parts = [p for p in (rel.catalogname, rel.schemaname, rel.relname) if p]
    return quote_name(*parts)


def names_temporary(rel: ast.RangeVar | None) -> bool:
    """Does a CREATE name a temporary table (TEMP, or the pg_temp schema)?"""
    if rel is None:
        return False
    # PostgreSQL compares the schema name exactly: "PG_TEMP" is another schema.
    return rel.relpersistence == TEMPORARY or rel.schemaname == "pg_temp"


def resolves_temporary(name: str, facts: CatalogFacts, missing_ok: bool = False) -> bool:
    """Does the session resolve the name to one of its temporary tables?"""
    persistence = facts.relation_persistence(name)
    return persistence == TEMPORARY or (persistence is None and missing_ok)


def relation_is_temporary(rel: ast.RangeVar | None, facts: CatalogFacts) -> bool:
    return rel is not None and resolves_temporary(range_var_name(rel), facts)


def references_temporary(
    constraint: ast.Constraint, created: ast.RangeVar | None, facts: CatalogFacts
) -> bool:
    """Does a foreign key reference one of the session's temporary tables: by a name
    that resolves to one now, or by the name of the table being created when
    nothing by that name exists yet (a self-reference)?"""
    referenced = constraint.pktable
    if referenced is None:
        return False
    persistence = facts.relation_persistence(range_var_name(referenced))
    if persistence is not None:
        return persistence == TEMPORARY
    return (
        created is not None
        and referenced.catalogname is None
        and referenced.relname == created.relname
        and referenced.schemaname in (None, "pg_temp")
    )


def foreign_keys_temporary(stmt: ast.CreateStmt, facts: CatalogFacts) -> bool:
    """Does every foreign key of a CREATE TABLE (column or table constraint)
    reference a temporary table of the session?  installer/parse_locks.c has the same."""
    constraints: list[ast.Node] = []
    for element in stmt.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            constraints.extend(element.constraints or ())
        else:
            constraints.append(element)
    constraints.extend(stmt.constraints or ())
    return all(
        references_temporary(constraint, stmt.relation, facts)
        for constraint in constraints
        if isinstance(constraint, ast.Constraint)
        and constraint.contype == ConstrType.CONSTR_FOREIGN
    )


def decide_temporary(stmt: ast.Node, facts: CatalogFacts) -> Verdict | None:
    """pysafe.allow_temp_objects: creating, filling, emptying and dropping the
    session's own temporary tables.  None when the statement is not of that kind."""
    allowed = Verdict.allow_temporary("temporary_objects")
    if isinstance(stmt, ast.CreateStmt):
        # Inheriting from or partitioning a permanent table would tie it to ours.
        plain = not stmt.inhRelations and stmt.partbound is None
        if not (plain and names_temporary(stmt.relation)):
            return None
        if not foreign_keys_temporary(stmt, facts):
            # PostgreSQL refuses it too, but only once it holds the lock.
            return Verdict.refuse("lock", messages.LOCKS, FOREIGN_KEY_DETAIL)
        return allowed
    if isinstance(stmt, ast.CreateTableAsStmt):
        creates_table = stmt.objtype == ObjectType.OBJECT_TABLE
        into = stmt.into.rel if stmt.into is not None else None
        return allowed if creates_table and names_temporary(into) else None
    if isinstance(stmt, ast.SelectStmt) and stmt.intoClause is not None:
        return allowed if names_temporary(stmt.intoClause.rel) else None
    if isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_TABLE:
        names = [quote_name(*(part.sval for part in obj)) for obj in stmt.objects or ()]
        temporary = all(resolves_temporary(n, facts, bool(stmt.missing_ok)) for n in names)
        return allowed if names and temporary else None
    if isinstance(stmt, ast.TruncateStmt):
        relations = stmt.relations or ()
        temporary = all(relation_is_temporary(rel, facts) for rel in relations)
        return allowed if relations and temporary else None
    if (
        isinstance(stmt, ast.CopyStmt)
        and stmt.is_from
        and stmt.filename is None
        and relation_is_temporary(stmt.relation, facts)
    ):
        # PostgreSQL lets COPY FROM fill a temporary table in a read-only transaction.
        return Verdict.allow("temporary_objects")
    return None


def decide_utility_node(
    stmt: ast.Node, command: str, settings: PolicySettings, facts: CatalogFacts
) -> Verdict:
    """Decide one parsed utility statement; ``command`` names it in messages."""
    if isinstance(stmt, ast.CreateTableAsStmt) and (
        refused := query_write_verdict(stmt.query, settings, facts)
    ):
        return refused  # the shim refuses it right after parse analysis
    if settings.allow_temp_objects and (temporary := decide_temporary(stmt, facts)):
        return temporary
    if isinstance(stmt, ast.VariableSetStmt):
        return decide_set(stmt, settings)
    if (
        isinstance(stmt, ast.DiscardStmt)
        and stmt.target == DiscardMode.DISCARD_ALL
        and settings.session_authorization_locked
    ):
        # DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT.
        return SESSION_AUTHORIZATION_LOCKED
    if isinstance(stmt, ast.TransactionStmt):
        return decide_transaction(stmt, settings)
    if isinstance(stmt, ast.ExplainStmt):
        return decide_explain(stmt, settings, facts)
    if isinstance(stmt, ast.CopyStmt):
        return decide_copy(stmt, settings, facts)
    if isinstance(stmt, ast.DoStmt):
        return decide_do(stmt, settings, facts)
    if isinstance(stmt, ast.PrepareStmt) and (
        refused := query_write_verdict(stmt.query, settings, facts)
    ):
        return refused  # the shim refuses it right after parse analysis
    if type(stmt) in SESSION_STATEMENTS:
        return Verdict.allow(SESSION_STATEMENTS[type(stmt)])
    if isinstance(stmt, ast.LockStmt):
        # PostgreSQL takes any LOCK in a read-only transaction; forcing refuses
        # what only a writer needs, as block_ddl does.
        if (stmt.mode or 0) > ROW_SHARE_LOCK and (settings.block_ddl or settings.force_read_only):
            return Verdict.refuse("lock", messages.LOCKS)
        return Verdict.allow("lock")
    if not settings.block_ddl:
        if settings.force_read_only and isinstance(stmt, WRITES_PERMITTED_READ_ONLY):
            return decide_write_permitted_read_only(stmt, command)
        if isinstance(stmt, ast.AlterSystemStmt):
            return Verdict.refuse(
                "server_files",
                messages.COMMAND.format(command=command),
                "ALTER SYSTEM writes postgresql.auto.conf; a restricted session writes no "
                "server file, whatever the pysafe settings.",
            )
        return Verdict.allow("ddl_allowed")
    return decide_ddl_category(stmt, command)


def expected_command_tag(stmt: ast.Node) -> str | None:
    """The command tag the server gives an allowed statement, or None if not tracked.

    An allowed verdict stands only if the server parsed the same kind of
    statement; see :func:`pysafe.policy.statement.decide_statement`.
    """
    if isinstance(stmt, ast.TransactionStmt):
        return TRANSACTION_TAGS.get(stmt.kind) if stmt.kind is not None else None
    if isinstance(stmt, ast.VariableSetStmt):
        resets = (VariableSetKind.VAR_RESET, VariableSetKind.VAR_RESET_ALL)
        return "RESET" if stmt.kind in resets else "SET"
    if isinstance(stmt, ast.FetchStmt):
        return "MOVE" if stmt.ismove else "FETCH"
    if isinstance(stmt, ast.ClosePortalStmt):
        return "CLOSE CURSOR" if stmt.portalname else "CLOSE CURSOR ALL"
    if isinstance(stmt, ast.DeallocateStmt):
        return "DEALLOCATE" if stmt.name else "DEALLOCATE ALL"
    if isinstance(stmt, ast.DiscardStmt):
        return DISCARD_TAGS.get(stmt.target) if stmt.target is not None else None
    if isinstance(stmt, ast.SelectStmt) and stmt.intoClause is not None:
        return "SELECT INTO"
    if isinstance(stmt, ast.CreateTableAsStmt) and stmt.objtype == ObjectType.OBJECT_TABLE:
        return "CREATE TABLE AS"
    if isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_TABLE:
        return "DROP TABLE"
    return SIMPLE_TAGS.get(type(stmt))


TRANSACTION_TAGS = {
    TransactionStmtKind.TRANS_STMT_BEGIN: "BEGIN",
    TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT: "COMMIT",
    TransactionStmtKind.TRANS_STMT_ROLLBACK: "ROLLBACK",
    TransactionStmtKind.TRANS_STMT_SAVEPOINT: "SAVEPOINT",
    TransactionStmtKind.TRANS_STMT_RELEASE: "RELEASE",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK",
    TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
    TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED",
}

DISCARD_TAGS = {
    DiscardMode.DISCARD_ALL: "DISCARD ALL",
    DiscardMode.DISCARD_PLANS: "DISCARD PLANS",
    DiscardMode.DISCARD_TEMP: "DISCARD TEMP",
    DiscardMode.DISCARD_SEQUENCES: "DISCARD SEQUENCES",
}

SIMPLE_TAGS: dict[type[ast.Node], str] = {
    ast.VariableShowStmt: "SHOW",
    ast.ListenStmt: "LISTEN",
    ast.UnlistenStmt: "UNLISTEN",
    ast.NotifyStmt: "NOTIFY",
    ast.DeclareCursorStmt: "DECLARE CURSOR",
    ast.PrepareStmt: "PREPARE",
    ast.ExecuteStmt: "EXECUTE",
    ast.DoStmt: "DO",
    ast.CallStmt: "CALL",
    ast.ConstraintsSetStmt: "SET CONSTRAINTS",
    ast.ExplainStmt: "EXPLAIN",
    ast.CopyStmt: "COPY",
    ast.LockStmt: "LOCK TABLE",
    ast.CreateStmt: "CREATE TABLE",
    ast.TruncateStmt: "TRUNCATE TABLE",
}
