"""The policy settings, as the shim passes them (a bit mask) and as a dataclass."""

from __future__ import annotations

from dataclasses import dataclass

# Bits of the flags argument of pysafe_internal.decide_utility; installer/pysafe.c has the same.
BLOCK_DML = 0x01
BLOCK_DDL = 0x02
BLOCK_C_FUNCTIONS = 0x04
BLOCK_ALL_C_FUNCTIONS = 0x08
FORCE_READ_ONLY = 0x10
LOCK_SESSION_AUTHORIZATION = 0x20
# Not a setting: the session became restricted through SET SESSION AUTHORIZATION.
SWITCHED_SESSION_AUTHORIZATION = 0x40
ALLOW_TEMP_OBJECTS = 0x80
# pysafe.read_write_requests = ignore (the default); refuse leaves the bit off.
IGNORE_READ_WRITE_REQUESTS = 0x100


@dataclass(frozen=True)
class PolicySettings:
    """The pysafe.* settings that shape a decision; defaults follow SafeSession."""

    block_dml: bool = True
    block_ddl: bool = True
    block_c_functions: bool = True
    block_all_c_functions: bool = False
    force_read_only: bool = True
    lock_session_authorization: bool = False
    switched_session_authorization: bool = False
    allow_temp_objects: bool = False
    ignore_read_write_requests: bool = True

    @classmethod
    def from_flags(cls, flags: int) -> PolicySettings:
        """Decode the bit mask the shim passes."""
        return cls(
            block_dml=bool(flags & BLOCK_DML),
            block_ddl=bool(flags & BLOCK_DDL),
            block_c_functions=bool(flags & BLOCK_C_FUNCTIONS),
            block_all_c_functions=bool(flags & BLOCK_ALL_C_FUNCTIONS),
            force_read_only=bool(flags & FORCE_READ_ONLY),
            lock_session_authorization=bool(flags & LOCK_SESSION_AUTHORIZATION),
            switched_session_authorization=bool(flags & SWITCHED_SESSION_AUTHORIZATION),
            allow_temp_objects=bool(flags & ALLOW_TEMP_OBJECTS),
            ignore_read_write_requests=bool(flags & IGNORE_READ_WRITE_REQUESTS),
        )

    def to_flags(self) -> int:
        """Encode as the shim does."""
        return (
            (BLOCK_DML if self.block_dml else 0)
            | (BLOCK_DDL if self.block_ddl else 0)
            | (BLOCK_C_FUNCTIONS if self.block_c_functions else 0)
            | (BLOCK_ALL_C_FUNCTIONS if self.block_all_c_functions else 0)
            | (FORCE_READ_ONLY if self.force_read_only else 0)
            | (LOCK_SESSION_AUTHORIZATION if self.lock_session_authorization else 0)
            | (SWITCHED_SESSION_AUTHORIZATION if self.switched_session_authorization else 0)
            | (ALLOW_TEMP_OBJECTS if self.allow_temp_objects else 0)
            | (IGNORE_READ_WRITE_REQUESTS if self.ignore_read_write_requests else 0)
        )

    @property
    def session_authorization_locked(self) -> bool:
        """Must this session keep the identity it switched to?"""
        return self.lock_session_authorization and self.switched_session_authorization
