"""The code behind pysafe.decide_utility(text, text, integer), run by PL/Python.

The shim calls that function for every utility statement of a restricted
session that its fast path does not pass.  Any exception here reaches the
shim as an error, and the shim refuses the statement (fail closed).
"""

from __future__ import annotations

from typing import Any

from pysafe.policy.settings import PolicySettings
from pysafe.policy.statement import decide_statement


class ServerCatalogFacts:
    """Catalog facts read through PL/Python's plpy module."""

    def __init__(self, plpy: Any) -> None:
        self._plpy = plpy

    def language_is_trusted(self, name: str) -> bool | None:
        plan = self._plpy.prepare(
            "SELECT lanpltrusted FROM pg_catalog.pg_language WHERE lanname = $1", ["name"]
        )
        rows = self._plpy.execute(plan, [name])
        return bool(rows[0]["lanpltrusted"]) if len(rows) else None


def decide_utility(statement: str, command_tag: str, flags: int, plpy: Any) -> str | None:
    """None to allow; otherwise the refusal message (and detail after a newline)."""
    verdict = decide_statement(
        statement, command_tag, PolicySettings.from_flags(flags), ServerCatalogFacts(plpy)
    )
    return verdict.as_server_reply()
