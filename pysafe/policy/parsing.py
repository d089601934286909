"""Parse SQL with pglast so that no statement can exhaust the C stack.

pglast turns libpg_query's parse tree into Python objects by C recursion,
one level per tree level, without checking the stack.  Inside a backend a
statement such as ``SELECT 1+1+...`` with 100,000 terms would overflow the
backend's stack and take the server down, although PostgreSQL's own parser
takes it.  So:

- A short statement (INLINE_PARSE_BYTES at most) is parsed where it is: each
  tree level takes at least two characters (``-1`` in ``- - - 1``), so its
  tree is at most about a thousand levels deep, which needs well under 1 MB
  of stack (tests/test_parsing.py measures it).
- A longer one is parsed in two steps.  libpg_query's protobuf output, which
  checks its own stack depth (PostgreSQL 18's grammar, pglast 8; see
  DEPTH_CHECKED_OUTPUT for the earlier ones), refuses trees deeper than a few
  thousand levels (:class:`StatementTooDeep`).  pglast then builds the tree in a
  thread whose stack is many times larger than the deepest tree that step
  lets through needs (measured: about 6 MB for 10,000 chained UNIONs).  The
  thread runs only pglast, with every signal blocked so that the server's
  signal handlers stay on the backend's own thread.  Starting it costs about
  0.3 ms, which only long statements pay.

While the thread parses, the caller's ``while_waiting`` runs every
WAIT_SLICE_SECONDS.  Inside the server it lets PostgreSQL process a pending
cancel or statement_timeout, which then ends the statement with 57014
instead of waiting for the parse (the thread finishes on its own and its
result is dropped).
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

from pglast import ast, parse_sql
from pglast.parser import ParseError, get_postgresql_version, parse_sql_protobuf

# Statements up to this size are parsed on the caller's stack.
INLINE_PARSE_BYTES = 2048
# The largest statement the server asks the policy about; installer/pysafe.c
# refuses longer ones itself, with the same words, without calling Python.
# pglast's tree takes about 40 times the text in memory and 0.7 s per MB to
# build, so this bounds one decision to about 0.2 s and 10 MB.  The
# statements clients send at such sizes (queries, EXPLAIN of a query, COPY
# TO STDOUT, DECLARE) never need the policy.
MAX_DECIDED_BYTES = 256 * 1024
# The grammar of the pglast this interpreter imports: install places the
# one of the server's own major version (pysafe/install/files.py).
GRAMMAR_MAJOR = int(get_postgresql_version()[0])
# libpg_query checks the depth of its protobuf output from PostgreSQL 18's
# (pglast 8) on.  Earlier ones (pglast 5 for 15, 7 for 17) have no such
# check, and their protobuf step overflows even the thread's stack on deep
# trees: there is no gate, and the thread's stack must hold the deepest tree
# MAX_DECIDED_BYTES can spell (about 130,000 levels: "SELECT 1+1+...").
# Measured outside the server, pglast 5 needs 24 to 32 MB for it and
# pglast 7 32 to 64 MB; a longer text is not parsed at all with them.
DEPTH_CHECKED_OUTPUT = GRAMMAR_MAJOR >= 18
# The parsing thread's stack: virtual memory, committed only as far as used.
PARSE_STACK_BYTES = (64 if DEPTH_CHECKED_OUTPUT else 256) * 1024 * 1024
# The depth (nodes on a path, lists not counted) at which a tree counts as
# too deep.  The shim measures the server's own tree of each statement it
# asks about against it first and refuses a deeper one without calling
# Python (installer/depth.c, PYSAFE_MAX_TREE_DEPTH: the same number), so
# pglast 5 and 7 see only shallow trees there; the check after their parse
# is for what the shim did not measure (pysafe.check(), Python-only mode,
# statement kinds depth.c does not walk).  PostgreSQL 18's protobuf gate
# refuses from about 6,000 chained terms.
MAX_TREE_DEPTH = 5_000
# The detail of every too-deep refusal; installer/pysafe.h has the same.
TOO_DEEP_DETAIL = (
    "the statement nests too deeply for pysafe to check; "
    "split the expression or the query into smaller parts"
)
# How often a parse in the thread lets the caller look for a cancel.
WAIT_SLICE_SECONDS = 0.02
# What libpg_query says of a tree too deep for it (the C stack, or protobuf's own limit).
TOO_DEEP = ("stack depth limit exceeded", "nested too deeply")

Result = TypeVar("Result")


class StatementTooDeep(ValueError):
    """The statement nests too deeply for pysafe to check; the server refuses it."""


def run_with_large_stack(
    function: Callable[[str], Result],
    argument: str,
    stack_bytes: int = PARSE_STACK_BYTES,
    while_waiting: Callable[[], None] | None = None,
) -> Result:
    """function(argument) in a thread with ``stack_bytes`` of stack, signals
    blocked; ``while_waiting()`` runs between waits and may raise to give up."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = function(argument)
        except BaseException as error:
            outcome["error"] = error

    previous_size = threading.stack_size(stack_bytes)
    try:
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            thread = threading.Thread(target=target, name="pysafe-parse", daemon=True)
            thread.start()  # the new thread inherits the blocked mask
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    finally:
        threading.stack_size(previous_size)
    try:
        thread.join(WAIT_SLICE_SECONDS)
        while thread.is_alive():
            if while_waiting is not None:
                while_waiting()
            thread.join(WAIT_SLICE_SECONDS)
    except BaseException:
        # Giving up (a cancel, a statement_timeout): the parse cannot be
        # stopped, and a thread left running would keep its tree until the
        # session's next Python call, since the backend holds the interpreter
        # lock whenever it is outside Python.  The parse is bounded (about
        # 0.2 s at MAX_DECIDED_BYTES), so wait for it, drop its result, and
        # hand the memory back before the error ends the statement.
        thread.join()
        outcome.clear()
        release_freed_memory()
        raise
    if "error" in outcome:
        raise outcome.pop("error")  # type: ignore[misc]
    return outcome.pop("value")  # type: ignore[return-value]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    import ctypes  # noqa: PLC0415 - only long statements need it

    try:
        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_freed_memory() -> None:
    """Give the heap a long parse freed back to the operating system.

    The parsing thread allocates in its own malloc arena; glibc keeps what
    it frees there (tens of MB after a statement near MAX_DECIDED_BYTES)
    unless asked.  malloc_trim(0) returns it, in well under a millisecond.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def check_depth(text: str) -> None:
    """libpg_query's depth-checked protobuf output; raises StatementTooDeep.

    Runs on the caller's thread: libpg_query crashes the backend when its
    protobuf step runs on the parsing thread (seen on PostgreSQL 15).
    """
    try:
        parse_sql_protobuf(text)
    except ParseError as error:
        if any(words in str(error) for words in TOO_DEEP):
            raise StatementTooDeep(TOO_DEEP_DETAIL) from error
        raise


def parse_statements(
    text: str, while_waiting: Callable[[], None] | None = None
) -> tuple[ast.RawStmt, ...]:
    """pglast's parse of ``text``; raises ParseError, or StatementTooDeep."""
    try:
        return parse_gated(text, while_waiting)
    except ParseError as error:
        if not LOCATION_CONVERTED_TWICE or text.isascii() or len(error.args) != 2:
            raise
        message, index = error.args
        raise ParseError(message, error_character(text, message, index)) from None


# pglast 5 turns libpg_query's byte offset of a syntax error into a
# character offset twice: after 'ééé' it reports 3 characters too early.
LOCATION_CONVERTED_TWICE = GRAMMAR_MAJOR == 15


def error_character(text: str, message: str, reported: int) -> int:
    """The character offset pglast 5 meant: a character offset whose value,
    read as a byte offset, spans ``reported`` characters; the one where the
    token the message names starts, if any."""
    first = len(text[:reported].encode())
    last = len(text[: reported + 1].encode())
    near = message.rsplit('at or near "', 1)[-1][:-1] if message.endswith('"') else ""
    for candidate in range(first, min(last, len(text))):
        if near and text.startswith(near, candidate):
            return candidate
    return min(first, len(text))


def parse_gated(
    text: str, while_waiting: Callable[[], None] | None = None
) -> tuple[ast.RawStmt, ...]:
    """parse_statements() but for pglast 5's error offsets."""
    if len(text) <= INLINE_PARSE_BYTES:  # characters: never more than the bytes
        return parse_sql(text)
    if DEPTH_CHECKED_OUTPUT:
        check_depth(text)
    elif len(text.encode()) > MAX_DECIDED_BYTES:
        # Without the gate only the length bounds the depth (a function body
        # pysafe.check() reads may be longer than any statement it decides).
        raise StatementTooDeep(
            f"the text is longer than {MAX_DECIDED_BYTES // 1024} kB, and PostgreSQL "
            f"{GRAMMAR_MAJOR}'s parser in pglast does not check depth; split it into smaller parts"
        )
    parsed = run_with_large_stack(parse_sql, text, while_waiting=while_waiting)
    if not DEPTH_CHECKED_OUTPUT and tree_deeper_than(parsed, MAX_TREE_DEPTH):
        raise StatementTooDeep(TOO_DEEP_DETAIL)
    return parsed


def tree_deeper_than(roots: tuple[ast.Node, ...], limit: int) -> bool:
    """Is any path of pglast's tree longer than ``limit`` nodes?  Walked
    without recursion, so that a deep tree cannot exhaust Python's stack."""
    pending: list[tuple[object, int]] = [(root, 1) for root in roots]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, tuple):
            pending.extend((item, depth) for item in node)
        elif isinstance(node, ast.Node):
            if depth > limit:
                return True
            for name in type(node).__slots__:  # type: ignore[attr-defined]
                value = getattr(node, name, None)
                if isinstance(value, ast.Node | tuple):
                    pending.append((value, depth + 1))
    return False
