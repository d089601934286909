"""Decide whole statements: parse with pglast, check agreement with the server, apply rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pglast import ast
from pglast.parser import ParseError

from pysafe.policy import messages
from pysafe.policy.calls import called_names, rule_applies
from pysafe.policy.facts import CatalogFacts, OfflineFacts
from pysafe.policy.functions import writing_function_names
from pysafe.policy.parsing import (
    MAX_DECIDED_BYTES,
    TOO_DEEP_DETAIL,
    StatementTooDeep,
    parse_statements,
)
from pysafe.policy.reading import reading
from pysafe.policy.settings import PolicySettings
from pysafe.policy.tags import command_tag
from pysafe.policy.utility import (
    DML_STATEMENTS,
    decide_temporary,
    decide_utility_node,
    expected_command_tag,
    query_write_verdict,
    relation_is_temporary,
)
from pysafe.policy.verdict import Verdict

WRITING_NAMES = writing_function_names()
# installer/pysafe.c has the same words for the refusals it makes itself.
TOO_LARGE_DETAIL = (
    f"The statement is longer than {MAX_DECIDED_BYTES // 1024} kB, the most pysafe's policy reads."
)


def writing_calls(stmt: ast.Node) -> list[str]:
    """Built-in writers a statement calls by name; what the shim refuses at run time."""
    return [
        name[-1]
        for name in called_names(stmt)
        if (len(name) == 1 or (len(name) == 2 and name[0] == "pg_catalog"))
        and name[-1] in WRITING_NAMES
    ]


@dataclass(frozen=True)
class StatementVerdict:
    """One statement of a text with what the policy says of it."""

    text: str
    verdict: Verdict
    stmt: ast.Node  # the parsed statement, for readers that need more than the verdict


def decide_query_node(stmt: ast.Node, settings: PolicySettings, facts: CatalogFacts) -> Verdict:
    """SELECT and DML: the rules the shim applies at ExecutorStart, for offline checks."""
    calls = writing_calls(stmt)
    if calls and rule_applies("builtin_functions", settings):
        detail = f"{calls[0]}() writes; see pysafe.function_review()."
        return Verdict.refuse("builtin_functions", messages.FUNCTIONS, detail)
    # Refused right after parse analysis (installer/parse_locks.c), before the
    # executor check would refuse it, so the lock parse analysis took is let go.
    if (refused := query_write_verdict(stmt, settings, facts)) is not None:
        return refused
    if isinstance(stmt, DML_STATEMENTS):
        if settings.allow_temp_objects and relation_is_temporary(stmt.relation, facts):
            return Verdict.allow("temporary_objects")
        return Verdict.allow("dml_allowed")
    assert isinstance(stmt, ast.SelectStmt)
    temporary = decide_temporary(stmt, facts) if settings.allow_temp_objects else None
    if temporary is not None:
        return temporary
    if stmt.intoClause is not None and settings.block_ddl:
        return Verdict.refuse(
            "create_table_as",
            messages.COMMAND.format(command="SELECT INTO"),
            "SELECT INTO creates a table.",
        )
    if settings.block_dml and stmt.lockingClause:
        return Verdict.refuse("row_locks", messages.ROW_LOCKS)
    return Verdict.allow("select")


def is_query(stmt: ast.Node) -> bool:
    """Is this planned and executed rather than a utility statement?"""
    return isinstance(stmt, (ast.SelectStmt, *DML_STATEMENTS))


def decide_node(
    stmt: ast.Node, command: str, settings: PolicySettings, facts: CatalogFacts
) -> Verdict:
    """Decide one parsed statement of any kind."""
    if is_query(stmt):
        return decide_query_node(stmt, settings, facts)
    return decide_utility_node(stmt, command, settings, facts)


def decide_statement(
    text: str,
    server_tag: str,
    settings: PolicySettings,
    facts: CatalogFacts,
    server_reading: str | None = None,
    *,
    while_waiting: Callable[[], None] | None = None,
) -> Verdict:
    """The server-side decision for one utility statement.

    ``text`` is the statement's own text, ``server_tag`` the command tag the
    server gave it and ``server_reading`` the shim's description of the tree
    the server will run (:mod:`pysafe.policy.reading`).  Fails closed: text
    that does not parse as exactly one statement, a reading that differs from
    the server's, or an allowed statement whose kind disagrees with the
    server's tag, is refused.  ``while_waiting`` runs while a long statement
    is parsed (see :func:`parse_statements`).
    """
    # Characters: the shim counts bytes in the server encoding, never fewer,
    # so the policy never refuses as too large what the shim passed to it.
    if len(text) > MAX_DECIDED_BYTES:
        return Verdict.refuse(
            "too_large",
            messages.UNPARSABLE.format(command=server_tag),
            TOO_LARGE_DETAIL,
        )
    try:
        parsed = parse_statements(text, while_waiting)
    except StatementTooDeep as error:
        unverified = messages.UNPARSABLE.format(command=server_tag)
        return Verdict.refuse("too_deep", unverified, str(error))
    except ParseError as error:
        return Verdict.refuse(
            "unparsable",
            messages.UNPARSABLE.format(command=server_tag),
            f"pglast could not parse the statement: {error}",
        )
    if len(parsed) != 1:
        return Verdict.refuse(
            "unparsable",
            messages.UNPARSABLE.format(command=server_tag),
            f"pglast found {len(parsed)} statements where the server ran one.",
        )
    stmt = parsed[0].stmt
    if stmt is None:
        return Verdict.refuse("unparsable", messages.UNPARSABLE.format(command=server_tag))
    try:
        return decide_parsed(stmt, server_tag, settings, facts, server_reading)
    except RecursionError as error:
        unverified = messages.UNPARSABLE.format(command=server_tag)
        return Verdict.refuse("too_deep", unverified, str(too_deep_to_walk(error)))


def decide_parsed(
    stmt: ast.Node,
    server_tag: str,
    settings: PolicySettings,
    facts: CatalogFacts,
    server_reading: str | None,
) -> Verdict:
    """decide_statement() once pglast has read exactly one statement."""
    if server_reading is not None and (ours := reading(stmt)) != server_reading:
        return Verdict.refuse(
            "parser_disagreement",
            messages.UNPARSABLE.format(command=server_tag),
            f"pglast read the statement as {ours[:300]!r}, the server as {server_reading[:300]!r}.",
        )
    verdict = decide_node(stmt, server_tag, settings, facts)
    if verdict.allowed:
        expected = expected_command_tag(stmt)
        if (expected is None and settings.block_ddl) or (
            expected is not None and expected != server_tag
        ):
            return Verdict.refuse(
                "parser_disagreement",
                messages.UNPARSABLE.format(command=server_tag),
                f"pglast read {type(stmt).__name__} where the server parsed {server_tag}.",
            )
    return verdict


def statement_texts(text: str, parsed: tuple[ast.RawStmt, ...]) -> list[str]:
    """Cut a text into its statements at pglast's offsets.

    libpg_query counts bytes of the UTF-8 text, as the server does, but
    pglast hands its nodes over with every location turned into an offset
    in the Python string (pglast 5, 7 and 8 alike), so the string is cut,
    not its bytes: cutting the bytes split multi-byte characters (issue 17).
    """
    pieces = []
    for raw in parsed:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        pieces.append(text[start:end].strip())
    return pieces


def too_deep_to_walk(error: RecursionError) -> StatementTooDeep:
    """What a tree too deep for the policy's walk in Python is: too deep to check."""
    return StatementTooDeep(TOO_DEEP_DETAIL)


def decide_text(
    text: str,
    settings: PolicySettings | None = None,
    facts: CatalogFacts | None = None,
    *,
    while_waiting: Callable[[], None] | None = None,
) -> list[StatementVerdict]:
    """What the policy does with each statement of a text (``pysafe check``).

    Raises :class:`pglast.parser.ParseError` for text that does not parse,
    :class:`StatementTooDeep` for text that nests too deeply to check.
    ``while_waiting`` runs while a long text is parsed (see
    :func:`parse_statements`).
    """
    settings = settings or PolicySettings()
    facts = facts or OfflineFacts()
    parsed = parse_statements(text, while_waiting)
    results = []
    for raw, piece in zip(parsed, statement_texts(text, parsed), strict=True):
        assert raw.stmt is not None
        command = command_tag(raw.stmt)
        try:
            verdict = decide_node(raw.stmt, command, settings, facts)
        except RecursionError as error:
            raise too_deep_to_walk(error) from None
        results.append(StatementVerdict(piece, verdict, raw.stmt))
    return results
