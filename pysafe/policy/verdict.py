"""What the policy says about one statement."""

from __future__ import annotations

from dataclasses import dataclass

READ_ONLY_SQLSTATE = "25006"


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

    @classmethod
    def allow(cls, rule: str) -> Verdict:
        return cls(True, rule)

    @classmethod
    def refuse(cls, rule: str, message: str, detail: str | None = None) -> Verdict:
        return cls(False, rule, message, detail)

    def as_server_reply(self) -> str | None:
        """The shim's protocol: NULL to allow, else "message" or "message\\ndetail"."""
        if self.allowed:
            return None
        assert self.message is not None
        return self.message if self.detail is None else f"{self.message}\n{self.detail}"
