"""What the functions a statement calls mean for its verdict: pysafe.check()'s reading.

The shim judges function calls as the executor starts a plan and fmgr binds
them (installer/pysafe.c, with the facts of installer/functions.c); the
statements inside a called function's body meet every check again when they
run, SECURITY DEFINER or not, because the session user stays the same.
``pysafe.check()`` predicts both from the same facts: the server reports the
calls a statement's plan would make and the shim's verdict on each
(installer/calls.c), and this module reads the bodies of the SQL and
PL/pgSQL functions among them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pglast import ast, parse_plpgsql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from pysafe.policy import messages
from pysafe.policy.parsing import StatementTooDeep, parse_statements
from pysafe.policy.settings import PolicySettings
from pysafe.policy.tags import command_tag
from pysafe.policy.verdict import Verdict

# Bodies read inside bodies, at most: deeper calls are reported as unknown.
MAX_BODY_DEPTH = 4
# PL/pgSQL's parse modes for an expression (RAW_PARSE_PLPGSQL_EXPR) and the
# three assignment forms; 0 is a whole statement.
PLPGSQL_EXPRESSION = 2
PLPGSQL_ASSIGNMENTS = (3, 4, 5)
# Exception conditions that catch a pysafe refusal (SQLSTATE 25006).
CATCHING_CONDITIONS = frozenset({"others", "read_only_sql_transaction", "25006"})
UNKNOWN = "unknown"
# Why a body is "unknown" when it nests too deeply for the reader to walk.
TOO_DEEP_BODY = (
    "its body nests too deeply for pysafe.check() to read; split it into smaller"
    " functions to have it checked (its statements still meet every check as they run)"
)


@dataclass(frozen=True)
class CalledFunction:
    """A function a statement calls, with the shim's verdict on the call."""

    name: str  # regprocedure text, e.g. "public.bump(integer)"
    rule: str | None  # the shim's refusal rule, None when it lets the call run
    detail: str | None
    volatile: bool
    language: str
    definition: str | None  # pg_get_functiondef(), for SQL and PL/pgSQL bodies


class CallFacts(Protocol):
    """The server's answers: what a statement calls, and functions by name."""

    def statement_calls(self, sql: str) -> list[CalledFunction]:
        """Every function the statement's plan would call (installer/calls.c)."""
        ...

    def functions_named(self, name: tuple[str, ...]) -> list[CalledFunction]:
        """The functions a possibly qualified name could mean, for calls in bodies."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What running a statement leads to: allowed, refused, or unknown (with why)."""

    verdict: Verdict | None  # None: no refusal found
    unknown: str | None = None  # set when the outcome depends on what check cannot see


def rule_applies(rule: str, settings: PolicySettings) -> bool:
    """Does the shim enforce this function rule under these settings (pysafe.c)?"""
    if rule == "builtin_functions":
        return settings.block_c_functions or settings.force_read_only
    return settings.block_c_functions


DecideNode = Callable[[ast.Node, str, PolicySettings], Verdict]


@dataclass
class CallReader:
    """Judges the calls of one statement, recursing into bodies."""

    settings: PolicySettings
    facts: CallFacts
    decide_node: DecideNode  # the statement policy (pysafe.policy.statement)

    def statement_outcome(self, sql: str, stmt: ast.Node) -> Outcome:
        """What running one statement (its text and parse) the statement policy
        allows leads to."""
        if isinstance(stmt, ast.DoStmt):
            return self.do_block(stmt)
        calls = self.facts.statement_calls(sql)
        if not runs_its_plan(stmt):
            # The shim checks the calls as the plan starts; no body runs yet.
            calls = [replace(call, volatile=False) for call in calls]
        return self.calls(calls, depth=0, seen=frozenset())

    def do_block(self, stmt: ast.DoStmt) -> Outcome:
        """A DO block's body runs like a volatile function's (the policy vetted its language)."""
        options = {
            o.defname: str(o.arg.sval) for o in stmt.args or () if isinstance(o.arg, ast.String)
        }
        language = options.get("language", "plpgsql").lower()
        body = options.get("as", "")
        tag = "pysafe_do"
        while f"${tag}$" in body:
            tag += "_"
        definition = (
            f"CREATE FUNCTION pg_temp.pysafe_do() RETURNS void LANGUAGE plpgsql "
            f"AS ${tag}${body}${tag}$"
        )
        block = CalledFunction("DO block", None, None, True, language, definition)
        return self.call(block, depth=0, seen=frozenset())

    def calls(self, functions: list[CalledFunction], depth: int, seen: frozenset[str]) -> Outcome:
        unknown = None
        for function in functions:
            outcome = self.call(function, depth, seen)
            if outcome.verdict is not None:
                return outcome
            unknown = unknown or outcome.unknown
        return Outcome(None, unknown)

    def call(self, function: CalledFunction, depth: int, seen: frozenset[str]) -> Outcome:
        if function.rule is not None and rule_applies(function.rule, self.settings):
            return Outcome(Verdict.refuse(function.rule, messages.FUNCTIONS, function.detail))
        if not function.volatile or function.name in seen:
            return Outcome(None)  # PostgreSQL runs non-volatile bodies read-only
        if function.language in ("sql", "plpgsql") and function.definition is None:
            return Outcome(None)  # a built-in SQL function: never a writer
        if function.language not in ("sql", "plpgsql"):
            if function.language in ("c", "internal"):
                return Outcome(None)
            return Outcome(
                None,
                f"{function.name} is a volatile {function.language} function, whose body "
                "pysafe.check() cannot read; the statements it runs are checked as they run",
            )
        if depth >= MAX_BODY_DEPTH:
            return Outcome(None, f"{function.name} is called {depth} bodies deep")
        return self.body(function, depth + 1, seen | {function.name})

    def body(self, function: CalledFunction, depth: int, seen: frozenset[str]) -> Outcome:
        """The statements of a SQL or PL/pgSQL body, as they meet the checks when run."""
        assert function.definition is not None
        try:
            if function.language == "sql":
                pieces = [(stmt, False) for stmt in sql_body(function.definition)]
            else:
                pieces = list(plpgsql_body(function.definition))
        except (ParseError, DynamicSql) as error:
            return Outcome(None, f"{function.name}: {error}")
        except (StatementTooDeep, RecursionError):
            return Outcome(None, f"{function.name}: {TOO_DEEP_BODY}")
        unknown = None
        for stmt, caught in pieces:
            try:
                outcome = self.body_statement(stmt, depth, seen)
            except RecursionError:
                return Outcome(None, f"{function.name}: {TOO_DEEP_BODY}")
            if outcome.verdict is not None and not outcome.verdict.allowed:
                if caught:
                    continue  # the body's EXCEPTION handler catches the refusal
                verdict = outcome.verdict
                where = f"{function.name} runs a statement pysafe refuses"
                detail = f"{where}: {verdict.detail}" if verdict.detail else f"{where}."
                return Outcome(Verdict.refuse(verdict.rule, verdict.message or "", detail))
            unknown = unknown or outcome.unknown
        return Outcome(None, unknown)

    def body_statement(self, stmt: ast.Node, depth: int, seen: frozenset[str]) -> Outcome:
        verdict = self.decide_node(stmt, command_tag(stmt), self.settings)
        if not verdict.allowed:
            return Outcome(verdict)
        unknown = None
        for name in called_names(stmt):
            candidates = self.facts.functions_named(name)
            outcomes = [self.call(candidate, depth, seen) for candidate in candidates]
            refused = [o for o in outcomes if o.verdict is not None]
            if refused and len(refused) == len(outcomes):
                return refused[0]
            if refused:
                unknown = f"{'.'.join(name)} has overloads pysafe refuses and others it allows"
            unknown = unknown or next((o.unknown for o in outcomes if o.unknown), None)
        return Outcome(None, unknown)


def runs_its_plan(stmt: ast.Node | None) -> bool:
    """Does the statement run the plan it starts?  Plain EXPLAIN and DECLARE
    CURSOR start one (the shim checks its calls then) but run nothing: a
    cursor's rows, and the bodies behind them, come with each FETCH."""
    if isinstance(stmt, ast.DeclareCursorStmt):
        return False
    if isinstance(stmt, ast.ExplainStmt):
        analyze = False
        for option in stmt.options or ():
            if option.defname == "analyze":  # PostgreSQL takes the last one
                analyze = option_is_true(option.arg)
        return analyze
    return True


def option_is_true(value: Any) -> bool:
    """An EXPLAIN option's value as PostgreSQL's defGetBoolean() reads it."""
    if value is None:
        return True
    if isinstance(value, ast.Integer):
        return value.ival != 0
    if isinstance(value, ast.Boolean):
        return bool(value.boolval)
    return str(getattr(value, "sval", "")).lower() in ("true", "on")


class DynamicSql(Exception):
    """A body runs SQL built at run time, which no reading can judge in advance."""


class CallNameFinder(Visitor):
    """Names of the functions a parsed statement calls."""

    def __init__(self) -> None:
        self.names: list[tuple[str, ...]] = []

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        parts = tuple(str(p.sval) for p in node.funcname or () if isinstance(p, ast.String))
        if parts and parts not in self.names:
            self.names.append(parts)


def called_names(stmt: ast.Node) -> list[tuple[str, ...]]:
    """Each name a statement calls, once (a CALL's procedure included)."""
    finder = CallNameFinder()
    finder(stmt)
    return finder.names


def calls_functions(stmt: ast.Node) -> bool:
    """Does the statement call any function, a procedure or run a DO block?"""
    return isinstance(stmt, ast.DoStmt) or bool(called_names(stmt))


def sql_body(definition: str) -> list[ast.Node]:
    """The statements of a LANGUAGE sql function, from its pg_get_functiondef()."""
    [raw] = parse_statements(definition)
    create = raw.stmt
    assert isinstance(create, ast.CreateFunctionStmt)
    if create.sql_body is not None:  # BEGIN ATOMIC ... END
        body: Any = create.sql_body
        items = body[0] if body and isinstance(body[0], tuple) else body
        return [item for item in items or () if isinstance(item, ast.Node)]
    for option in create.options or ():
        if option.defname == "as":
            source = option.arg[0].sval if isinstance(option.arg, tuple) else option.arg.sval
            return [raw.stmt for raw in parse_statements(source) if raw.stmt is not None]
    return []


def plpgsql_body(definition: str) -> Iterator[tuple[ast.Node, bool]]:
    """Each SQL statement and expression of a PL/pgSQL body, and whether an
    EXCEPTION handler around it catches a refusal; DynamicSql for EXECUTE."""
    yield from plpgsql_items(parse_plpgsql(definition), caught=False)


def plpgsql_items(node: Any, caught: bool) -> Iterator[tuple[ast.Node, bool]]:
    if isinstance(node, list):
        for item in node:
            yield from plpgsql_items(item, caught)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors") or (
            key == "PLpgSQL_stmt_open" and isinstance(value, dict) and "dynquery" in value
        ):
            raise DynamicSql("its body runs SQL built at run time (EXECUTE)")
        if key == "PLpgSQL_stmt_block" and isinstance(value, dict):
            handlers = value.get("exceptions", {}).get("PLpgSQL_exception_block", {})
            inner_caught = caught or catches_refusals(handlers)
            yield from plpgsql_items(value.get("body", []), inner_caught)
            yield from plpgsql_items(handlers, caught)
            continue
        if key == "PLpgSQL_expr" and isinstance(value, dict):
            yield from expression_statements(value, caught)
            continue
        yield from plpgsql_items(value, caught)


def catches_refusals(handlers: dict[str, Any]) -> bool:
    for handler in handlers.get("exc_list", []):
        for condition in handler.get("PLpgSQL_exception", {}).get("conditions", []):
            name = condition.get("PLpgSQL_condition", {}).get("condname", "")
            if name.lower() in CATCHING_CONDITIONS:
                return True
    return False


def expression_statements(expr: dict[str, Any], caught: bool) -> Iterator[tuple[ast.Node, bool]]:
    query = str(expr.get("query", ""))
    mode = expr.get("parseMode", 0)
    if mode == PLPGSQL_EXPRESSION:
        query = f"SELECT {query}"
    elif mode in PLPGSQL_ASSIGNMENTS:
        _, _, value = query.partition(":=") if ":=" in query else query.partition("=")
        query = f"SELECT {value}"
    for raw in parse_statements(query):
        if raw.stmt is not None:
            yield raw.stmt, caught
