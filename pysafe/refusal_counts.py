"""The refusal counts the shim keeps (pysafe.refusals), for python -m pysafe status."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors

REFUSALS_QUERY = """
SELECT database, role, rule, refusals, last_refusal FROM pysafe.refusals
 ORDER BY refusals DESC, last_refusal DESC, database, role, rule
"""

# Rows status prints; --json has them all.
TOP_ROWS = 5


@dataclass(frozen=True)
class RefusalCount:
    database: str | None  # None: no database (physical replication), or dropped since
    role: str | None  # None: dropped since, or the overflow row
    rule: str
    refusals: int
    last_refusal: datetime.datetime


@dataclass(frozen=True)
class RefusalCounts:
    """The counts, or why they could not be read (``unavailable``)."""

    rows: tuple[RefusalCount, ...] = field(default_factory=tuple)
    unavailable: str | None = None

    @property
    def total(self) -> int:
        return sum(row.refusals for row in self.rows)

    def as_json(self) -> dict[str, Any]:
        return {
            "counted": self.unavailable is None,
            "unavailable": self.unavailable,
            "total": self.total,
            "rows": [
                {
                    "database": r.database,
                    "role": r.role,
                    "rule": r.rule,
                    "refusals": r.refusals,
                    "last_refusal": r.last_refusal.isoformat(),
                }
                for r in self.rows
            ],
        }


def read_refusal_counts(conn: psycopg.Connection[Any]) -> RefusalCounts:
    """pysafe.refusals as the connected role sees it; an autocommit connection."""
    try:
        rows = conn.execute(REFUSALS_QUERY).fetchall()
    except errors.InsufficientPrivilege:
        return RefusalCounts(
            unavailable="not readable by this role: connect as a superuser or a member of "
            "pg_monitor"
        )
    except (errors.UndefinedTable, errors.UndefinedFunction):
        return RefusalCounts(
            unavailable="this database's pysafe objects predate refusal counts: "
            "run python -m pysafe install"
        )
    except errors.ObjectNotInPrerequisiteState as error:
        return RefusalCounts(unavailable=error.diag.message_primary or str(error))
    return RefusalCounts(rows=tuple(RefusalCount(*row) for row in rows))


def refusal_lines(counts: RefusalCounts, top: int = TOP_ROWS) -> list[str]:
    """The total, then the ``top`` largest counts, one line each."""
    if counts.unavailable is not None:
        return [f"refusals: {counts.unavailable}"]
    lines = [f"refusals since server start or reset: {counts.total}"]
    for row in counts.rows[:top]:
        where = f"database {row.database or '-'}, role {row.role or '-'}"
        last = row.last_refusal.isoformat(sep=" ", timespec="seconds")
        lines.append(f"  {row.refusals:>8}  {row.rule}  ({where}; last {last})")
    if len(counts.rows) > top:
        lines.append(f"  ... {len(counts.rows) - top} more: SELECT * FROM pysafe.refusals")
    return lines
