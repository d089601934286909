"""The pysafe policy: pure functions that decide what a restricted session may run.

The server-side entry point (:mod:`pysafe.server`) and the offline
``python -m pysafe check`` both call :func:`decide_statement`; the C shim keeps
only hooks and a fast path that a test proves agrees with this policy.
"""

from pysafe.policy.facts import CatalogFacts, OfflineFacts
from pysafe.policy.settings import PolicySettings
from pysafe.policy.statement import decide_statement, decide_text
from pysafe.policy.verdict import Verdict

__all__ = [
    "CatalogFacts",
    "OfflineFacts",
    "PolicySettings",
    "Verdict",
    "decide_statement",
    "decide_text",
]
