"""pglast never exhausts the C stack: short statements inline, long ones gated.

See pysafe/policy/parsing.py.  These tests run without a server; the
server-side ones (a restricted session, pysafe.check()) are in
tests/test_attacks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pglast import parse_sql
from pglast.parser import ParseError

from pysafe.policy import decide_text
from pysafe.policy.parsing import (
    INLINE_PARSE_BYTES,
    MAX_TREE_DEPTH,
    TOO_DEEP_DETAIL,
    StatementTooDeep,
    error_character,
    parse_statements,
    run_with_large_stack,
)
from tests.support import run_cli

LIMIT = INLINE_PARSE_BYTES
# The stack the inline parse may need, at most: a quarter of PostgreSQL's
# default max_stack_depth (2 MB), itself well inside a backend's stack.
INLINE_STACK_BUDGET = 512 * 1024


def nested(prefix: str, opening: str, closing: str, core: str = "1") -> str:
    """prefix + opening*n + core + closing*n, as long as fits in LIMIT."""
    n = (LIMIT - len(prefix) - len(core)) // (len(opening) + len(closing))
    return prefix + opening * n + core + closing * n


def chained(prefix: str, link: str) -> str:
    """prefix + link*n, as long as fits in LIMIT."""
    return prefix + link * ((LIMIT - len(prefix)) // len(link))


# The deepest trees a statement of LIMIT characters can make, by shape.
DEEPEST_SHORT_STATEMENTS = {
    "unary minus": nested("SELECT ", "- ", ""),
    "bitwise not": nested("SELECT ", "~ ", ""),
    "NOT": nested("SELECT ", "NOT ", "", "true"),
    "plus": chained("SELECT 1", "+1"),
    "concatenation": chained("SELECT 'a'", "||'a'"),
    "cast": chained("SELECT 1", "::int"),
    "UNION": chained("SELECT 1", " UNION SELECT 1"),
    "sub-select": nested("SELECT ", "(SELECT ", ")"),
    "function call": nested("SELECT ", "f(", ")"),
    "ARRAY": nested("SELECT ", "ARRAY[", "]"),
    "ROW": nested("SELECT ", "ROW(", ")"),
    "CASE": nested("SELECT ", "CASE WHEN 1 THEN ", " END"),
    "IS NULL": chained("SELECT 1", " IS NULL"),
    "COLLATE": chained("SELECT 'a'", ' COLLATE "C"'),
    "AT TIME ZONE": chained("SELECT 1", " AT TIME ZONE 1"),
    "JSON arrow": chained("SELECT x", "->'a'"),
    "AND/OR": chained("SELECT a", " AND b OR c"),
    "parenthesised plus": nested("SELECT ", "(1+", ")"),
    "IN sub-select": nested("SELECT 1 IN ", "(SELECT 1 IN ", ")", "(1)"),
    "EXPLAIN ANALYZE": chained("EXPLAIN ANALYZE SELECT 1", "+1"),
}


@pytest.mark.parametrize("shape", sorted(DEEPEST_SHORT_STATEMENTS))
def test_short_statements_parse_within_a_small_stack(shape: str) -> None:
    """What parse_statements() parses inline fits in INLINE_STACK_BUDGET."""
    text = DEEPEST_SHORT_STATEMENTS[shape]
    assert LIMIT - 40 <= len(text) <= LIMIT
    run_with_large_stack(parse_sql, text, INLINE_STACK_BUDGET)


DEEP_STATEMENTS = {
    "100k plus": "EXPLAIN ANALYZE SELECT " + "+".join(["1"] * 100_000),
    "100k concatenation": "COPY (SELECT " + "||".join(["'a'"] * 100_000) + ") TO '/tmp/x'",
    "30k UNION ALL": "EXPLAIN ANALYZE " + " UNION ALL ".join(["SELECT 1"] * 30_000),
    "10k parentheses": "EXPLAIN ANALYZE SELECT " + "(" * 10_000 + "1" + ")" * 10_000,
}


@pytest.mark.parametrize("shape", sorted(DEEP_STATEMENTS))
def test_deep_statements_end_in_an_error(shape: str) -> None:
    """Never a crash: too deep for pysafe, or a syntax error of the parser's own."""
    with pytest.raises((StatementTooDeep, ParseError)):
        parse_statements(DEEP_STATEMENTS[shape])
    with pytest.raises((StatementTooDeep, ParseError)):
        decide_text(DEEP_STATEMENTS[shape])


def test_long_statements_below_the_gate_parse_in_the_thread() -> None:
    text = "EXPLAIN ANALYZE " + " UNION ALL ".join(["SELECT 1"] * 4_000)
    assert len(text) > LIMIT
    (statement,) = parse_statements(text)
    assert statement.stmt is not None
    assert decide_text(text)[0].verdict.allowed


def test_errors_in_the_thread_reach_the_caller() -> None:
    with pytest.raises(ParseError):
        parse_statements("SELECT (" + "1," * 2000)


@pytest.mark.parametrize("shape", sorted(DEEP_STATEMENTS))
def test_offline_check_reports_deep_statements_without_a_traceback(shape: str) -> None:
    result = run_cli("check", stdin=DEEP_STATEMENTS[shape])
    assert result.returncode == 1, result.stderr  # cannot be judged (docs/check.md)
    assert "Traceback" not in result.stderr
    assert "cannot parse" in result.stderr


def test_the_shim_and_the_policy_share_the_depth_bound() -> None:
    """installer/depth.c refuses what is deeper than the policy's bound, with
    the policy's words: one number, one text (pysafe.h mirrors parsing.py)."""
    header = (Path(__file__).parent.parent / "installer" / "pysafe.h").read_text()
    depth = re.search(r"#define PYSAFE_MAX_TREE_DEPTH\s+(\d+)", header)
    detail = re.search(r'#define PYSAFE_TOO_DEEP_DETAIL\s+"([^"]*)"', header)
    assert depth is not None and int(depth.group(1)) == MAX_TREE_DEPTH
    assert detail is not None and detail.group(1) == TOO_DEEP_DETAIL


@pytest.mark.parametrize(
    ("text", "reported", "meant"),
    [
        ("SELECT 'ééé'; SELEC 1", 11, 14),
        ("SELECT '€'; SELEC 1", 10, 12),
        ("SELECT 'e'; SELEC 1", 12, 12),
    ],
)
def test_pglast_5_error_offsets_are_read_as_meant(text: str, reported: int, meant: int) -> None:
    """pglast 5 (15's grammar) converts a syntax error's byte offset to
    characters twice; the policy reports the character the parser meant."""
    assert error_character(text, 'syntax error at or near "SELEC"', reported) == meant
