"""What the policy says about one statement."""

from __future__ import annotations

from dataclasses import dataclass

READ_ONLY_SQLSTATE = "25006"
# The shim's reply for "allowed, and it writes only temporary objects": the
# shim lifts read-only for that one statement (pysafe.allow_temp_objects).
# Refusals always start with "cannot", so the two never meet.
TEMPORARY_WRITE_REPLY = "+temporary"


@dataclass(frozen=True)
class Verdict:
    """Allowed, or refused with SafeSession-style wording.

    ``rule`` names the rule that decided, for logs and ``pysafe check``.
    """

    allowed: bool
    rule: str
    message: str | None = None
    detail: str | None = None
    sqlstate: str = READ_ONLY_SQLSTATE
    writes_temporary: bool = False  # creates, drops or empties temporary tables only

    @classmethod
    def allow(cls, rule: str) -> Verdict:
        return cls(True, rule)

    @classmethod
    def allow_temporary(cls, rule: str) -> Verdict:
        """Allowed because it touches only temporary tables (pysafe.allow_temp_objects)."""
        return cls(True, rule, writes_temporary=True)

    @classmethod
    def refuse(cls, rule: str, message: str, detail: str | None = None) -> Verdict:
        return cls(False, rule, message, detail)

    def as_server_reply(self) -> str | None:
        """The shim's protocol: NULL to allow, TEMPORARY_WRITE_REPLY to allow with
        read-only lifted for the statement, else "rule\\nmessage[\\ndetail]"
        (the rule names the refusal in the server log)."""
        if self.allowed:
            return TEMPORARY_WRITE_REPLY if self.writes_temporary else None
        assert self.message is not None
        reply = f"{self.rule}\n{self.message}"
        return reply if self.detail is None else f"{reply}\n{self.detail}"
