"""pysafe.check() on hostile input (issue 17): text with multi-byte
characters is cut into the right statements, and SQL that nests too deeply
gets a clean error or verdict that names the fix, without Python's marks."""

from __future__ import annotations

import pytest

from pysafe.policy.statement import decide_text
from tests.support import Server, assert_without_python_marks, attempt_on

# One statement per kind of character: two, four and three bytes in UTF-8.
MULTI_BYTE = [
    "SELECT 'é' AS accent",
    "SELECT '😀😀' AS emoji",
    "INSERT INTO accounts VALUES (98, length('中文字'))",
    "SELECT 'x' AS ascii",
]
MULTI_BYTE_TEXT = "; ".join(MULTI_BYTE) + ";"


def nested_if_block(depth: int) -> str:
    """A DO block of ``depth`` nested IFs: short text, a deep body."""
    return "DO $$BEGIN " + "IF true THEN " * depth + "PERFORM 1; " + "END IF; " * depth + "END$$"


def test_offline_check_cuts_multi_byte_text_at_the_right_places() -> None:
    results = decide_text(MULTI_BYTE_TEXT)
    assert [r.text for r in results] == MULTI_BYTE
    assert [r.verdict.allowed for r in results] == [True, True, False, True]


def test_check_cuts_multi_byte_text_at_the_right_places(server: Server) -> None:
    for role in ("reporting", "writer"):
        rows = server.admin(
            f"SELECT statement, verdict FROM pysafe.check($t${MULTI_BYTE_TEXT}$t$, '{role}')"
        )
        assert [r[0] for r in rows] == MULTI_BYTE, rows
        refused = "refused" if role == "reporting" else "allowed"
        assert [r[1] for r in rows] == ["allowed", "allowed", refused, "allowed"], rows


def test_check_of_a_deep_statement_is_a_clean_error(server: Server) -> None:
    deep = "SELECT 'é'; SELECT 1" + "+1" * 20_000  # too deep for libpg_query's tree output
    with server.connect() as conn:
        refusal = attempt_on(conn, f"SELECT * FROM pysafe.check($t${deep}$t$, 'reporting')")
    assert refusal is not None and refusal.sqlstate == "54001", refusal
    assert refusal.hint is not None and "smaller parts" in refusal.hint, refusal
    assert_without_python_marks(refusal)


DEEP_BODIES = {
    # PL/pgSQL's tree as JSON, deeper than Python's recursion limit.
    "nested IFs": "DO $$BEGIN "
    + "IF true THEN " * 3000
    + "PERFORM 1; "
    + "END IF; " * 3000
    + "END$$",
    # An expression too deep for libpg_query's tree output (StatementTooDeep).
    "deep expression": "DO $$BEGIN PERFORM 1" + "+1" * 20_000 + "; END$$",
}


@pytest.mark.parametrize("name", DEEP_BODIES)
def test_check_of_a_deep_body_is_a_clean_verdict(server: Server, name: str) -> None:
    """A body the reader cannot walk is 'unknown', with what to do; the
    statement itself still meets every check when it runs."""
    block = DEEP_BODIES[name]
    for role in ("reporting", "writer"):
        rows = server.admin(f"SELECT verdict, detail FROM pysafe.check($t${block}$t$, '{role}')")
        if role == "writer":
            assert rows == [("allowed", None)], rows
            continue
        [(verdict, detail)] = rows
        assert verdict == "unknown", rows
        assert "nests too deeply" in str(detail) and "smaller" in str(detail), detail
    # A shallow body is read as before.
    rows = server.admin(
        "SELECT verdict FROM pysafe.check($t$" + nested_if_block(50) + "$t$, 'reporting')"
    )
    assert rows == [("allowed",)], rows
