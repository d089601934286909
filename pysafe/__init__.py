"""pysafe: make the sessions of chosen PostgreSQL roles strictly read-only."""

__version__ = "0.2.0"

# PostgreSQL 17 brought login event triggers.
LOGIN_EVENT_VERSION = 170000
