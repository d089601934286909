"""PostgreSQL's command tag for a statement pglast parsed, for refusal wording.

On the server the shim hands the policy the tag PostgreSQL gave the
statement.  Offline (``pysafe check``) and for the statements inside
function bodies there is no server tag, so the policy names the command
here, as PostgreSQL's ``CreateCommandTag()`` would: refusals then read the
same either way (``cannot execute CREATE TABLE in a read-only session``).
A kind this table does not know is named by its node type.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums.parsenodes import ObjectType

from pysafe.policy.utility import expected_command_tag

# How the tags of DROP, ALTER, ALTER ... RENAME / SET SCHEMA / OWNER name objects.
OBJECT_NAMES: dict[ObjectType, str] = {
    ObjectType.OBJECT_ACCESS_METHOD: "ACCESS METHOD",
    ObjectType.OBJECT_AGGREGATE: "AGGREGATE",
    ObjectType.OBJECT_ATTRIBUTE: "TYPE",
    ObjectType.OBJECT_CAST: "CAST",
    ObjectType.OBJECT_COLUMN: "TABLE",
    ObjectType.OBJECT_COLLATION: "COLLATION",
    ObjectType.OBJECT_CONVERSION: "CONVERSION",
    ObjectType.OBJECT_DATABASE: "DATABASE",
    ObjectType.OBJECT_DOMAIN: "DOMAIN",
    ObjectType.OBJECT_DOMCONSTRAINT: "DOMAIN",
    ObjectType.OBJECT_EVENT_TRIGGER: "EVENT TRIGGER",
    ObjectType.OBJECT_EXTENSION: "EXTENSION",
    ObjectType.OBJECT_FDW: "FOREIGN DATA WRAPPER",
    ObjectType.OBJECT_FOREIGN_SERVER: "SERVER",
    ObjectType.OBJECT_FOREIGN_TABLE: "FOREIGN TABLE",
    ObjectType.OBJECT_FUNCTION: "FUNCTION",
    ObjectType.OBJECT_INDEX: "INDEX",
    ObjectType.OBJECT_LANGUAGE: "LANGUAGE",
    ObjectType.OBJECT_LARGEOBJECT: "LARGE OBJECT",
    ObjectType.OBJECT_MATVIEW: "MATERIALIZED VIEW",
    ObjectType.OBJECT_OPCLASS: "OPERATOR CLASS",
    ObjectType.OBJECT_OPERATOR: "OPERATOR",
    ObjectType.OBJECT_OPFAMILY: "OPERATOR FAMILY",
    ObjectType.OBJECT_POLICY: "POLICY",
    ObjectType.OBJECT_PROCEDURE: "PROCEDURE",
    ObjectType.OBJECT_PUBLICATION: "PUBLICATION",
    ObjectType.OBJECT_ROLE: "ROLE",
    ObjectType.OBJECT_ROUTINE: "ROUTINE",
    ObjectType.OBJECT_RULE: "RULE",
    ObjectType.OBJECT_SCHEMA: "SCHEMA",
    ObjectType.OBJECT_SEQUENCE: "SEQUENCE",
    ObjectType.OBJECT_STATISTIC_EXT: "STATISTICS",
    ObjectType.OBJECT_SUBSCRIPTION: "SUBSCRIPTION",
    ObjectType.OBJECT_TABCONSTRAINT: "TABLE",
    ObjectType.OBJECT_TABLE: "TABLE",
    ObjectType.OBJECT_TABLESPACE: "TABLESPACE",
    ObjectType.OBJECT_TRANSFORM: "TRANSFORM",
    ObjectType.OBJECT_TRIGGER: "TRIGGER",
    ObjectType.OBJECT_TSCONFIGURATION: "TEXT SEARCH CONFIGURATION",
    ObjectType.OBJECT_TSDICTIONARY: "TEXT SEARCH DICTIONARY",
    ObjectType.OBJECT_TSPARSER: "TEXT SEARCH PARSER",
    ObjectType.OBJECT_TSTEMPLATE: "TEXT SEARCH TEMPLATE",
    ObjectType.OBJECT_TYPE: "TYPE",
    ObjectType.OBJECT_VIEW: "VIEW",
}

# Statement kinds whose tag depends on nothing else.
FIXED_TAGS: dict[type[ast.Node], str] = {
    ast.AlterCollationStmt: "ALTER COLLATION",
    ast.AlterDatabaseRefreshCollStmt: "ALTER DATABASE",
    ast.AlterDatabaseSetStmt: "ALTER DATABASE",
    ast.AlterDatabaseStmt: "ALTER DATABASE",
    ast.AlterDefaultPrivilegesStmt: "ALTER DEFAULT PRIVILEGES",
    ast.AlterDomainStmt: "ALTER DOMAIN",
    ast.AlterEnumStmt: "ALTER TYPE",
    ast.AlterEventTrigStmt: "ALTER EVENT TRIGGER",
    ast.AlterExtensionContentsStmt: "ALTER EXTENSION",
    ast.AlterExtensionStmt: "ALTER EXTENSION",
    ast.AlterFdwStmt: "ALTER FOREIGN DATA WRAPPER",
    ast.AlterForeignServerStmt: "ALTER SERVER",
    ast.AlterOpFamilyStmt: "ALTER OPERATOR FAMILY",
    ast.AlterOperatorStmt: "ALTER OPERATOR",
    ast.AlterPolicyStmt: "ALTER POLICY",
    ast.AlterPublicationStmt: "ALTER PUBLICATION",
    ast.AlterRoleSetStmt: "ALTER ROLE",
    ast.AlterRoleStmt: "ALTER ROLE",
    ast.AlterSeqStmt: "ALTER SEQUENCE",
    ast.AlterStatsStmt: "ALTER STATISTICS",
    ast.AlterSubscriptionStmt: "ALTER SUBSCRIPTION",
    ast.AlterSystemStmt: "ALTER SYSTEM",
    ast.AlterTableSpaceOptionsStmt: "ALTER TABLESPACE",
    ast.AlterTSConfigurationStmt: "ALTER TEXT SEARCH CONFIGURATION",
    ast.AlterTSDictionaryStmt: "ALTER TEXT SEARCH DICTIONARY",
    ast.AlterTypeStmt: "ALTER TYPE",
    ast.AlterUserMappingStmt: "ALTER USER MAPPING",
    ast.CheckPointStmt: "CHECKPOINT",
    ast.ClusterStmt: "CLUSTER",
    ast.CommentStmt: "COMMENT",
    ast.CompositeTypeStmt: "CREATE TYPE",
    ast.CreateAmStmt: "CREATE ACCESS METHOD",
    ast.CreateCastStmt: "CREATE CAST",
    ast.CreateConversionStmt: "CREATE CONVERSION",
    ast.CreateDomainStmt: "CREATE DOMAIN",
    ast.CreateEnumStmt: "CREATE TYPE",
    ast.CreateEventTrigStmt: "CREATE EVENT TRIGGER",
    ast.CreateExtensionStmt: "CREATE EXTENSION",
    ast.CreateFdwStmt: "CREATE FOREIGN DATA WRAPPER",
    ast.CreateForeignServerStmt: "CREATE SERVER",
    ast.CreateForeignTableStmt: "CREATE FOREIGN TABLE",
    ast.CreateOpClassStmt: "CREATE OPERATOR CLASS",
    ast.CreateOpFamilyStmt: "CREATE OPERATOR FAMILY",
    ast.CreatePLangStmt: "CREATE LANGUAGE",
    ast.CreatePolicyStmt: "CREATE POLICY",
    ast.CreatePublicationStmt: "CREATE PUBLICATION",
    ast.CreateRangeStmt: "CREATE TYPE",
    ast.CreateRoleStmt: "CREATE ROLE",
    ast.CreateSchemaStmt: "CREATE SCHEMA",
    ast.CreateSeqStmt: "CREATE SEQUENCE",
    ast.CreateStatsStmt: "CREATE STATISTICS",
    ast.CreateSubscriptionStmt: "CREATE SUBSCRIPTION",
    ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
    ast.CreateTransformStmt: "CREATE TRANSFORM",
    ast.CreateTrigStmt: "CREATE TRIGGER",
    ast.CreateUserMappingStmt: "CREATE USER MAPPING",
    ast.CreatedbStmt: "CREATE DATABASE",
    ast.DropOwnedStmt: "DROP OWNED",
    ast.DropRoleStmt: "DROP ROLE",
    ast.DropSubscriptionStmt: "DROP SUBSCRIPTION",
    ast.DropTableSpaceStmt: "DROP TABLESPACE",
    ast.DropUserMappingStmt: "DROP USER MAPPING",
    ast.DropdbStmt: "DROP DATABASE",
    ast.ImportForeignSchemaStmt: "IMPORT FOREIGN SCHEMA",
    ast.IndexStmt: "CREATE INDEX",
    ast.LoadStmt: "LOAD",
    ast.ReassignOwnedStmt: "REASSIGN OWNED",
    ast.RefreshMatViewStmt: "REFRESH MATERIALIZED VIEW",
    ast.ReindexStmt: "REINDEX",
    ast.RuleStmt: "CREATE RULE",
    ast.SecLabelStmt: "SECURITY LABEL",
    ast.ViewStmt: "CREATE VIEW",
    ast.InsertStmt: "INSERT",
    ast.UpdateStmt: "UPDATE",
    ast.DeleteStmt: "DELETE",
    ast.MergeStmt: "MERGE",
    ast.SelectStmt: "SELECT",
}

# ALTER <object>, for the statements whose tag follows the object they change.
OBJECT_TYPED: dict[type[ast.Node], str] = {
    ast.AlterObjectDependsStmt: "objectType",
    ast.AlterObjectSchemaStmt: "objectType",
    ast.AlterOwnerStmt: "objectType",
    ast.AlterTableMoveAllStmt: "objtype",
    ast.AlterTableStmt: "objtype",
}


def object_name(objtype: object) -> str:
    """The object part of a tag; "???" for a type PostgreSQL has no tag for, as it says."""
    if isinstance(objtype, int):  # pglast's enum members are ints
        return next((name for kind, name in OBJECT_NAMES.items() if kind == objtype), "???")
    return "???"


def command_tag(stmt: ast.Node) -> str:
    """The tag PostgreSQL would give the statement (``CREATE TABLE``, ``SELECT INTO``)."""
    tracked = expected_command_tag(stmt)
    if tracked is not None:
        return tracked
    if isinstance(stmt, ast.CreateTableAsStmt):
        if stmt.objtype == ObjectType.OBJECT_MATVIEW:
            return "CREATE MATERIALIZED VIEW"
        return "SELECT INTO" if stmt.is_select_into else "CREATE TABLE AS"
    if isinstance(stmt, ast.DropStmt):
        return f"DROP {object_name(stmt.removeType)}"
    if isinstance(stmt, ast.RenameStmt):
        # A renamed column is named after its relation: ALTER VIEW, ALTER TABLE ...
        column = stmt.renameType == ObjectType.OBJECT_COLUMN
        return f"ALTER {object_name(stmt.relationType if column else stmt.renameType)}"
    if type(stmt) in OBJECT_TYPED:
        return f"ALTER {object_name(getattr(stmt, OBJECT_TYPED[type(stmt)]))}"
    if isinstance(stmt, ast.DefineStmt):
        return f"CREATE {object_name(stmt.kind)}"
    if isinstance(stmt, ast.CreateFunctionStmt):
        return "CREATE PROCEDURE" if stmt.is_procedure else "CREATE FUNCTION"
    if isinstance(stmt, ast.AlterFunctionStmt):
        return f"ALTER {object_name(stmt.objtype)}"
    if isinstance(stmt, (ast.GrantStmt, ast.GrantRoleStmt)):
        return "GRANT" if stmt.is_grant else "REVOKE"
    if isinstance(stmt, ast.VacuumStmt):
        return "VACUUM" if stmt.is_vacuumcmd else "ANALYZE"
    return FIXED_TAGS.get(type(stmt), type(stmt).__name__)
