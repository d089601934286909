"""The policy's reading of a statement, in the form the shim gives the server's.

pglast parses the statement's *text*; the server runs its own parse tree.
The two can differ (``standard_conforming_strings = off``, another grammar
version, a setting changed between parse and execution), so the shim
describes the tree the server will run (``pysafe_server_reading()`` in
installer/reading.c) and the policy describes what it judged, here, in the
same canonical form.  A statement whose two readings differ is refused.

The form holds every fact a rule relies on: the statement kind, COPY's
direction and target, EXPLAIN's effective ANALYZE and inner statement,
SET's name and values, transaction options, DO's language, LOCK's mode, and
the relations of the statements that may write temporary tables.  Any
statement kind neither read in detail nor named in KINDS_BY_NAME reads as
``other``: the policy decides all of those alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from pglast import ast
from pglast.enums.parsenodes import ObjectType

from pysafe.policy.utility import DML_STATEMENTS, explain_analyzes, select_writes

# Statement kinds read by name alone (their rules look at nothing else).
KINDS_BY_NAME = frozenset(
    {
        "VacuumStmt",
        "ClusterStmt",
        "ReindexStmt",
        "CheckPointStmt",
        "AlterSystemStmt",
        "LoadStmt",
        "VariableShowStmt",
        "ListenStmt",
        "UnlistenStmt",
        "NotifyStmt",
        "DeclareCursorStmt",
        "FetchStmt",
        "ClosePortalStmt",
        "PrepareStmt",
        "ExecuteStmt",
        "DeallocateStmt",
        "CallStmt",
        "ConstraintsSetStmt",
        "GrantStmt",
        "GrantRoleStmt",
        "AlterDefaultPrivilegesStmt",
        "AlterOwnerStmt",
    }
)

DML_NAMES: dict[type[ast.Node], str] = {
    ast.InsertStmt: "insert",
    ast.UpdateStmt: "update",
    ast.DeleteStmt: "delete",
    ast.MergeStmt: "merge",
}


def counted(value: str) -> str:
    """<characters>:<text>, so no value can pass for another."""
    return f"{len(value)}:{value}"


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def range_var(rel: ast.RangeVar | None) -> str:
    """<persistence>:"catalog"."schema"."name", the parts present."""
    if rel is None:
        return "none"
    parts = [p for p in (rel.catalogname, rel.schemaname, rel.relname) if p is not None]
    return f"{rel.relpersistence}:" + ".".join(quoted(p) for p in parts)


def constant(node: ast.Node | None) -> str:
    """i<int>, f<n:text>, b<true|false>, s<n:text>, x<n:text>, null, or ?."""
    if isinstance(node, ast.A_Const):
        node = None if node.isnull else node.val
    if node is None:
        return "null"
    if isinstance(node, ast.Integer):
        return f"i{node.ival or 0}"
    if isinstance(node, ast.Float):
        return "f" + counted(node.fval or "")
    if isinstance(node, ast.Boolean):
        return "btrue" if node.boolval else "bfalse"
    if isinstance(node, ast.String):
        return "s" + counted(node.sval or "")
    if isinstance(node, ast.BitString):
        return "x" + counted(node.bsval or "")
    return "?"


def arguments(items: Iterable[ast.Node] | None) -> str:
    """SET arguments or statement options: constants, or name=constant."""
    rendered = []
    for item in items or ():
        if isinstance(item, ast.DefElem):
            value = item.arg if isinstance(item.arg, ast.Node) else None
            rendered.append(f"{counted(item.defname or '')}={constant(value)}")
        else:
            rendered.append(constant(item))
    return ",".join(rendered)


def explained(query: ast.Node | None) -> str:
    """The reading of EXPLAIN's statement, as the server sees it once analyzed."""
    if isinstance(query, ast.SelectStmt) and query.intoClause is None:
        return f"select;cte_writes={int(select_writes(query))}"
    if isinstance(query, DML_STATEMENTS):
        return DML_NAMES[type(query)]
    return reading(query)


def created_as(objtype: ObjectType | None, into: ast.IntoClause | None) -> str:
    kind = {ObjectType.OBJECT_TABLE: "table", ObjectType.OBJECT_MATVIEW: "matview"}
    rel = into.rel if into is not None else None
    return f"CreateTableAsStmt;objtype={kind.get(objtype, 'other')};into={range_var(rel)}"  # type: ignore[arg-type]


def reading(stmt: ast.Node | None) -> str:
    """The canonical reading of one statement; installer/reading.c has the same."""
    if stmt is None:
        return "none"
    name = type(stmt).__name__
    if isinstance(stmt, ast.VariableSetStmt):
        kind = int(stmt.kind) if stmt.kind is not None else 0
        return (
            f"VariableSetStmt;kind={kind};local={int(bool(stmt.is_local))};"
            f"name={counted(stmt.name or '')};args={arguments(stmt.args)}"
        )
    if isinstance(stmt, ast.TransactionStmt):
        kind = int(stmt.kind) if stmt.kind is not None else 0
        return f"TransactionStmt;kind={kind};options={arguments(stmt.options)}"
    if isinstance(stmt, ast.ExplainStmt):
        analyze = int(explain_analyzes(stmt))
        return f"ExplainStmt;analyze={analyze};query={explained(stmt.query)}"
    if isinstance(stmt, ast.CopyStmt):
        return (
            f"CopyStmt;from={int(bool(stmt.is_from))};program={int(bool(stmt.is_program))};"
            f"file={int(stmt.filename is not None)};query={int(stmt.query is not None)};"
            f"relation={range_var(stmt.relation)}"
        )
    if isinstance(stmt, ast.DoStmt):
        language = "none"
        for arg in stmt.args or ():
            if isinstance(arg, ast.DefElem) and arg.defname == "language":
                language_name = arg.arg.sval if isinstance(arg.arg, ast.String) else None
                language = counted(language_name or "")
        return f"DoStmt;language={language}"
    if isinstance(stmt, ast.LockStmt):
        return f"LockStmt;mode={stmt.mode or 0}"
    if isinstance(stmt, ast.DiscardStmt):
        target = int(stmt.target) if stmt.target is not None else 0
        return f"DiscardStmt;target={target}"
    if isinstance(stmt, ast.CreateStmt):
        return (
            f"CreateStmt;inherits={len(stmt.inhRelations or ())};"
            f"partition_of={int(stmt.partbound is not None)};relation={range_var(stmt.relation)}"
        )
    if isinstance(stmt, ast.CreateTableAsStmt):
        return created_as(stmt.objtype, stmt.into)
    if isinstance(stmt, ast.SelectStmt) and stmt.intoClause is not None:
        return created_as(ObjectType.OBJECT_TABLE, stmt.intoClause)
    if isinstance(stmt, ast.DropStmt):
        table = stmt.removeType == ObjectType.OBJECT_TABLE
        objects = ""
        if table:
            objects = ",".join(
                ".".join(quoted(part.sval or "") for part in obj if isinstance(part, ast.String))
                for obj in stmt.objects or ()
            )
        return (
            f"DropStmt;type={'table' if table else 'other'};"
            f"missing_ok={int(bool(stmt.missing_ok))};objects={objects}"
        )
    if isinstance(stmt, ast.TruncateStmt):
        return "TruncateStmt;relations=" + ",".join(range_var(r) for r in stmt.relations or ())
    if name in KINDS_BY_NAME:
        return name
    return "other"
