"""Catalog facts the policy needs but cannot read from the statement text."""

from __future__ import annotations

from typing import Protocol

# Languages PostgreSQL ships as trusted; used when no server can be asked.
KNOWN_TRUSTED_LANGUAGES = frozenset({"plpgsql", "sql", "plperl", "pltcl"})
TEMPORARY = "t"
UNKNOWN_PERSISTENCE = "?"


class CatalogFacts(Protocol):
    """What the server knows: the server-side entry point asks pg_catalog."""

    def language_is_trusted(self, name: str) -> bool | None:
        """True/False from pg_language, None when the language does not exist."""
        ...

    def relation_persistence(self, name: str) -> str | None:
        """pg_class.relpersistence of a (quoted, possibly qualified) name as the
        session resolves it: "t" for one of the session's own temporary tables
        (another session's reads as "o"); None when there is no such relation."""
        ...


class OfflineFacts:
    """Facts for offline checks: only PostgreSQL's own trusted languages."""

    def language_is_trusted(self, name: str) -> bool | None:
        return name.lower() in KNOWN_TRUSTED_LANGUAGES

    def relation_persistence(self, name: str) -> str | None:
        # Unknown without a session: never "t", so nothing counts as temporary.
        return UNKNOWN_PERSISTENCE
